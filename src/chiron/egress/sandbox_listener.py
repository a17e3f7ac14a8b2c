"""Per-sandbox listeners: unix sockets whose connections mitmproxy's proxy core serves.

mitmproxy cannot listen on unix sockets itself, so each listener is our own asyncio unix
server that hands every accepted connection to a mitmproxy connection handler in regular
(HTTP proxy) mode. The sandbox's identity is the listener that accepted the connection:
`ConnectionTable` maps each mitmproxy client connection to it, and every addon looks the
sandbox up there. Not a TCP port on the host: any host process could connect to one and
borrow the sandbox's credentials.

Layout: `<listeners_dir>/<sandbox_id>/proxy.sock`. The directory (0755) is what the sandbox
backend mounts, so a listener re-opened after a restart is found at the same path; the
socket is 0666 because the sandbox may run as its own uid, and `listeners_dir` itself is
0700, so no other host user reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import ctx
from mitmproxy.master import Master
from mitmproxy.proxy import layers, mode_specs, server
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler

from chiron.egress.listener_policy import ListenerPolicy

SOCKET_NAME = "proxy.sock"
_MAX_SUN_PATH = 100
_LOOPBACK = "127.0.0.1"
_CLOSE_GRACE_S = 2.0


@dataclass
class ClientState:
    """One client connection: whose it is and where its CONNECT tunnel goes."""

    listener: SandboxListener
    target: tuple[str, int] | None = None


class ConnectionTable:
    """mitmproxy client connection id → the listener (sandbox) it came through."""

    def __init__(self) -> None:
        self._clients: dict[str, ClientState] = {}

    def attach(self, client_id: str, listener: SandboxListener) -> None:
        self._clients[client_id] = ClientState(listener)

    def detach(self, client_id: str) -> None:
        self._clients.pop(client_id, None)

    def get(self, client_id: str) -> ClientState | None:
        return self._clients.get(client_id)

    def __len__(self) -> int:
        return len(self._clients)


class _SandboxConnectionHandler(ProxyConnectionHandler):
    """mitmproxy's handler, with loopback-looking addresses for a unix-socket client."""

    def __init__(
        self,
        master: Master,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        mode: mode_specs.ProxyMode,
        sandbox_id: str,
        number: int,
    ) -> None:
        self.master = master
        # ProxyConnectionHandler.__init__ would format the unix peer name ('') and fail.
        server.LiveConnectionHandler.__init__(self, reader, writer, ctx.options, mode)
        self.client.peername = (_LOOPBACK, number)
        self.client.sockname = (_LOOPBACK, 0)
        self.log_prefix = f"egress {sandbox_id} #{number}: "


class SandboxListener:
    """The listener of one sandbox. Lives on the proxy loop; `policy` None means 503."""

    def __init__(self, sandbox_id: str, directory: Path, table: ConnectionTable) -> None:
        self.sandbox_id = sandbox_id
        self.directory = directory
        self.policy: ListenerPolicy | None = None
        self._table = table
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._numbers = itertools.count(1)
        self._mode = mode_specs.ProxyMode.parse("regular")

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    async def start(self) -> None:
        self.directory.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.directory, 0o755)
        sock = _bind_unix(self.socket_path)
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except BaseException:
            sock.close()
            raise

    async def close(self, *, remove: bool) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        # Closing a client's transport lets mitmproxy wind its connection down (upstream
        # connections included); what is still there after a grace period is cancelled.
        for writer in self._handlers.values():
            writer.close()
        if self._handlers:
            _, pending = await asyncio.wait(list(self._handlers), timeout=_CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        handler = _SandboxConnectionHandler(
            ctx.master, reader, writer, self._mode, self.sandbox_id, next(self._numbers)
        )
        handler.layer = layers.modes.HttpProxy(handler.layer.context)
        client_id = handler.client.id
        self._table.attach(client_id, self)
        try:
            await handler.handle_client()
        except asyncio.CancelledError:
            # Only `close` cancels us; asyncio would log a cancelled connection task.
            writer.close()
        finally:
            self._table.detach(client_id)
            self._handlers.pop(task, None)


def _bind_unix(path: Path) -> socket.socket:
    """A listening socket at `path` (replacing a stale one), reachable by the sandbox's uid."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # Paths longer than sockaddr_un allows go through the directory's descriptor.
            short = (
                str(path)
                if len(os.fsencode(path)) < _MAX_SUN_PATH
                else f"/proc/self/fd/{dir_fd}/{path.name}"
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.name, dir_fd=dir_fd)
            sock.bind(short)
            os.chmod(path.name, 0o666, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
