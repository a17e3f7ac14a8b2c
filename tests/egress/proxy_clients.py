"""Reaching a listener from the host in tests: a TCP bridge to its unix socket (what socat does
inside a sandbox) and an httpx client that uses it as its proxy and trusts the proxy CA."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx


async def open_unix(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a unix socket, also through paths longer than sockaddr_un allows."""
    if len(os.fsencode(path)) < 100:
        return await asyncio.open_unix_connection(str(path))
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{dir_fd}/{path.name}")
    finally:
        os.close(dir_fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


@contextlib.asynccontextmanager
async def tcp_bridge(socket_path: Path) -> AsyncIterator[int]:
    """A 127.0.0.1 port forwarding every connection to `socket_path`."""
    tasks: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            up_reader, up_writer = await open_unix(socket_path)
        except OSError:
            writer.close()
            tasks.discard(task)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # torn down: end quietly (asyncio logs a connection task that was cancelled)
        finally:
            up_writer.close()
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def proxied_client(socket_path: Path, proxy_ca: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose only way out is the listener at `socket_path`."""
    async with tcp_bridge(socket_path) as port:
        context = ssl.create_default_context(cafile=str(proxy_ca))
        async with httpx.AsyncClient(
            proxy=f"http://127.0.0.1:{port}", verify=context, trust_env=False, timeout=20
        ) as client:
            yield client


async def raw_exchange(socket_path: Path, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send `data` straight to a listener and read until it closes (or `timeout`)."""
    reader, writer = await open_unix(socket_path)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
