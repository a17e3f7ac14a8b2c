"""The control plane's side of a supervisor's unix socket (protocol in `supervisor.py`).

Owns connecting (also through socket paths longer than the kernel's 108-byte limit), one
request/response exchange, and opening a `read` stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

_MAX_SUN_PATH = 100


class SupervisorUnreachable(Exception):
    """Nobody answers on the socket: the supervisor is gone (or never started)."""


class SupervisorRefused(Exception):
    """The supervisor answered `ok: false`; the message is its reason."""


async def _connect(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        if len(os.fsencode(socket_path)) < _MAX_SUN_PATH:
            return await asyncio.open_unix_connection(str(socket_path))
        # Too long for sockaddr_un: go through a descriptor of the directory instead.
        dir_fd = os.open(socket_path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return await asyncio.open_unix_connection(f"/proc/self/fd/{dir_fd}/{socket_path.name}")
        finally:
            os.close(dir_fd)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
        raise SupervisorUnreachable(str(socket_path)) from exc


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: dict[str, Any]
) -> dict[str, Any]:
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise SupervisorUnreachable("connection dropped") from exc
    if not line.endswith(b"\n"):
        raise SupervisorUnreachable("connection closed before an answer")
    answer: dict[str, Any] = json.loads(line)
    if not answer.get("ok"):
        raise SupervisorRefused(str(answer.get("error", "refused")))
    return answer


async def request(
    socket_path: Path, message: dict[str, Any], *, timeout: float | None
) -> dict[str, Any]:
    """Send one request and return the answer; TimeoutError if none within `timeout`."""

    async def exchange() -> dict[str, Any]:
        reader, writer = await _connect(socket_path)
        try:
            return await _exchange(reader, writer, message)
        finally:
            await _close(writer)

    return await asyncio.wait_for(exchange(), timeout)


class OutputStream:
    """An open `read` stream: raw output-log bytes from the requested offset on."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" when the supervisor closed the stream (or dropped it)."""
        try:
            return await self._reader.read(size)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    async def close(self) -> None:
        await _close(self._writer)


async def open_output_stream(socket_path: Path, offset: int, *, timeout: float) -> OutputStream:
    reader, writer = await _connect(socket_path)
    try:
        await asyncio.wait_for(_exchange(reader, writer, {"op": "read", "offset": offset}), timeout)
    except BaseException:
        await _close(writer)
        raise
    return OutputStream(reader, writer)
