"""A sandbox's egress path without the proxy itself: the host side is a plain unix-socket
server standing in for the proxy listener, so only the sandbox's half is under test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chiron.sandbox.backend import EgressBinding, SandboxError
from chiron.sandbox.local_backend import LocalSandboxBackend
from tests.sandbox.conftest import Reader, SandboxFactory, deltas, run_turn

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def fake_listener() -> AsyncIterator[tuple[Path, list[bytes]]]:
    """Answers every connection with what it read, prefixed by `seen:`. In a short temporary
    directory: pytest's own can be too long for a unix socket path."""
    scratch = tempfile.TemporaryDirectory(prefix="chiron-egress-")
    directory = Path(scratch.name) / "listener"
    os.mkdir(directory, 0o755)
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        seen.append(data)
        writer.write(b"seen:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, str(directory / "proxy.sock"))
    os.chmod(directory / "proxy.sock", 0o666)
    try:
        yield directory, seen
    finally:
        server.close()
        scratch.cleanup()


async def test_the_proxy_socket_is_bridged_to_loopback_inside(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    async with fake_listener() as (directory, seen):
        egress = EgressBinding(directory / "proxy.sock", ca, proxy_port=18080)
        sandbox_id = await make_sandbox(egress=egress)
        reader = Reader(backend, sandbox_id)
        out = deltas(
            await run_turn(
                backend,
                reader,
                "printf 'hello\\n' | python3 -c \"import socket,sys; "
                "s=socket.create_connection(('127.0.0.1', 18080)); "
                "s.sendall(sys.stdin.buffer.read()); "
                'print(s.recv(100).decode())"; echo $HTTPS_PROXY; cat $SSL_CERT_FILE; '
                "cmp $SSL_CERT_FILE /etc/ssl/certs/ca-certificates.crt && echo same; "
                "ls /run/chiron-egress; ps -eo comm | sort | uniq | tr '\\n' ' '",
            )
        )
    assert seen == [b"hello\n"]
    assert "seen:hello" in out and "http://127.0.0.1:18080" in out
    assert "not checked here" in out and "same" in out
    assert "proxy.sock" in out and "socat" in out


async def test_without_egress_nothing_changes(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    out = deltas(
        await run_turn(
            backend,
            Reader(backend, sandbox_id),
            "env | grep -ci proxy; ls /run 2>&1; ps -eo comm | grep -c socat",
        )
    )
    assert out.split()[0] == "0" and "No such file" in out and out.split()[-1] == "0"


async def test_a_missing_listener_is_a_clear_error(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    egress = EgressBinding(tmp_path / "nowhere" / "proxy.sock", tmp_path / "ca.pem")
    with pytest.raises(SandboxError, match="open the sandbox's listener"):
        await make_sandbox(egress=egress)
