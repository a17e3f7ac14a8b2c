"""`EgressProxy`: one mitmproxy `Master` per control-plane process, serving every sandbox.

The proxy runs on a thread of its own with its own event loop (`PolicyEventLoop`):
- its name resolution is the egress policy's (overrides, public addresses only), which cannot
  be done on the application's loop (uvloop resolves internally; patching it would reach every
  other connection of the server);
- mitmproxy installs its own exception handler and task factory on the loop it runs on;
- the API's loop and the proxy do not wait on each other.

Every public method is a coroutine for the loop that called `start()`; it runs the work on the
proxy loop and returns once it is done there, which is the acknowledgement the control plane
waits for (for example before writing a re-pointed warm sandbox's first input).

    proxy = EgressProxy(EgressOptions.from_settings(settings), on_audit=..., on_denied=...)
    await proxy.start()                              # CA on first start, Master running
    socket = await proxy.open_listener(sandbox_id)   # before creating the sandbox (503 until…)
    await proxy.load(sandbox_id, config)             # …its principal's config is loaded
    await proxy.load(sandbox_id, other_config)       # re-point (warm pool claim)
    await proxy.close_listener(sandbox_id)           # after the sandbox stopped
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mitmproxy import options as mitm_options
from mitmproxy.addons import next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from chiron.egress.audit_addon import AuditAddon
from chiron.egress.audit_record import AuditCallback, DeniedCallback, EventSink
from chiron.egress.ca import EgressCA
from chiron.egress.egress_options import BODY_LIMIT, STREAM_ABOVE, EgressOptions
from chiron.egress.listener_policy import ListenerPolicy
from chiron.egress.name_resolution import PolicyEventLoop, parse_overrides
from chiron.egress.oauth_addon import OAuthAddon
from chiron.egress.oauth_tokens import OAuthTokens
from chiron.egress.policy_addon import PolicyAddon
from chiron.egress.proxy_config import ProxyConfig
from chiron.egress.sandbox_listener import SOCKET_NAME, ConnectionTable, SandboxListener
from chiron.egress.scrub_addon import ScrubAddon
from chiron.egress.signing_addon import SigningAddon
from chiron.egress.swap_addon import SwapAddon
from chiron.egress.token_endpoint import TokenEndpoint

logger = logging.getLogger(__name__)
T = TypeVar("T")
_START_TIMEOUT_S = 30.0
# The sandbox backend's id shape: a listener directory name, never a path.
_SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_STOP_TIMEOUT_S = 15.0


class EgressProxyError(Exception):
    """The proxy cannot do what was asked; the message is safe to show."""


class _Running:
    """Tells `start()` that mitmproxy finished starting up."""

    def __init__(self, started: asyncio.Event) -> None:
        self._started = started

    def running(self) -> None:
        self._started.set()


class EgressProxy:
    # mitmproxy keeps its master and options in module globals (`mitmproxy.ctx`): two running
    # masters in one process would serve each other's connections.
    _running: ClassVar[EgressProxy | None] = None

    def __init__(
        self,
        options: EgressOptions,
        *,
        on_audit: AuditCallback | None = None,
        on_denied: DeniedCallback | None = None,
    ) -> None:
        self._options = options
        self._overrides = parse_overrides(options.resolve)
        self._on_audit = on_audit
        self._on_denied = on_denied
        self._ca: EgressCA | None = None
        self._thread: threading.Thread | None = None
        self._loop: PolicyEventLoop | None = None
        self._master: Master | None = None
        self._stopping: asyncio.Event | None = None
        self._table = ConnectionTable()
        self._listeners: dict[str, SandboxListener] = {}

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate sandboxes trust (never the key)."""
        if self._ca is None:
            raise EgressProxyError("the egress proxy is not started")
        return self._ca.cert_path

    async def start(self) -> None:
        """Generate the CA on first start, then run mitmproxy on the proxy thread."""
        if self._thread is not None:
            raise EgressProxyError("the egress proxy is already started")
        if EgressProxy._running is not None:
            raise EgressProxyError("another egress proxy runs in this process (one per process)")
        EgressProxy._running = self
        try:
            self._ca = await asyncio.to_thread(EgressCA.ensure, self._options.ca_dir)
            bundle = await asyncio.to_thread(self._ca.upstream_bundle, self._options.upstream_ca)
            self._options.listeners_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._options.listeners_dir.chmod(0o700)
            sink = EventSink(asyncio.get_running_loop(), self._on_audit, self._on_denied)
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._thread_main,
                args=(sink, bundle, ready),
                name="chiron-egress",
                daemon=True,
            )
            self._thread.start()
            await asyncio.wait_for(asyncio.wrap_future(ready), _START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every listener (sockets gone, directories kept for a restart) and end."""
        thread, loop = self._thread, self._loop
        if thread is not None:
            if loop is not None and not loop.is_closed():
                # The loop may have ended already (or end while we wait).
                with contextlib.suppress(
                    EgressProxyError, RuntimeError, TimeoutError, concurrent.futures.CancelledError
                ):
                    await asyncio.wait_for(self._call(self._shutdown()), _STOP_TIMEOUT_S)
            await asyncio.to_thread(thread.join, 10)
        self._thread = None
        self._loop = None
        if EgressProxy._running is self:
            EgressProxy._running = None

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def cpu_seconds(self) -> float:
        """CPU time the proxy's thread has used (for benchmarks)."""
        thread = self._thread
        if thread is None or thread.ident is None:
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))

    # -- listeners -----------------------------------------------------------------------

    def socket_path(self, sandbox_id: str) -> Path:
        """Where `sandbox_id`'s listener is (or will be): mount its directory in the sandbox."""
        return self._listener_dir(sandbox_id) / SOCKET_NAME

    async def open_listener(self, sandbox_id: str) -> Path:
        """Start `sandbox_id`'s listener (503 until `load`); returns its socket path.

        Opening it again (after a control-plane restart) reuses its directory, which a
        running sandbox has mounted; the config must then be loaded again.
        """
        directory = self._listener_dir(sandbox_id)
        return await self._call(self._open(sandbox_id, directory))

    async def load(self, sandbox_id: str, config: ProxyConfig) -> None:
        """Apply `config` to the listener (first load or re-point); returns once applied.

        Requests already past the policy finish with the config they started with; every
        later request and upstream connection sees the new one.
        """
        policy = ListenerPolicy(config, self._options.allow)
        await self._call(self._apply(sandbox_id, policy))

    async def loaded_hash(self, sandbox_id: str) -> str | None:
        """The hash of the config the listener applies now (None: not loaded)."""
        return await self._call(self._loaded_hash(sandbox_id))

    async def close_listener(self, sandbox_id: str) -> None:
        """Stop `sandbox_id`'s listener and remove its directory; idempotent."""
        await self._call(self._close(sandbox_id))

    # -- on the proxy loop ---------------------------------------------------------------

    async def _open(self, sandbox_id: str, directory: Path) -> Path:
        listener = self._listeners.get(sandbox_id)
        if listener is None:
            listener = SandboxListener(sandbox_id, directory, self._table)
            await listener.start()
            self._listeners[sandbox_id] = listener
        return listener.socket_path

    async def _apply(self, sandbox_id: str, policy: ListenerPolicy) -> None:
        listener = self._listener(sandbox_id)
        current = listener.policy
        if current is not None and current.config.config_hash == policy.config.config_hash:
            return
        listener.policy = policy

    async def _loaded_hash(self, sandbox_id: str) -> str | None:
        policy = self._listener(sandbox_id).policy
        return None if policy is None else policy.config.config_hash

    async def _close(self, sandbox_id: str) -> None:
        listener = self._listeners.pop(sandbox_id, None)
        if listener is not None:
            await listener.close(remove=True)
        else:
            directory = self._listener_dir(sandbox_id)
            await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)

    def _listener(self, sandbox_id: str) -> SandboxListener:
        listener = self._listeners.get(sandbox_id)
        if listener is None:
            raise EgressProxyError(f"no egress listener for sandbox {sandbox_id}")
        return listener

    async def _shutdown(self) -> None:
        listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            await listener.close(remove=False)
        if self._stopping is not None:
            self._stopping.set()

    # -- the thread ----------------------------------------------------------------------

    def _thread_main(
        self, sink: EventSink, bundle: Path | None, ready: concurrent.futures.Future[None]
    ) -> None:
        loop = PolicyEventLoop(self._overrides)
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sink, bundle, ready))
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.exception("the egress proxy stopped on an error")
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # name lookups
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(
        self, sink: EventSink, bundle: Path | None, ready: concurrent.futures.Future[None]
    ) -> None:
        assert self._ca is not None
        self._stopping = asyncio.Event()
        started = asyncio.Event()
        master = self._make_master(sink, bundle, started)
        self._master = master
        run = asyncio.ensure_future(master.run())
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait([run, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            await run  # raises what stopped mitmproxy from starting
            raise EgressProxyError("mitmproxy ended before it started")
        ready.set_result(None)
        await self._stopping.wait()
        master.shutdown()  # type: ignore[no-untyped-call]
        await run

    def _make_master(self, sink: EventSink, bundle: Path | None, started: asyncio.Event) -> Master:
        assert self._ca is not None
        # mitmproxy reports every connection at INFO: keep its chatter out of the server log.
        logging.getLogger("mitmproxy").setLevel(logging.WARNING)
        opts = mitm_options.Options(
            confdir=str(self._ca.directory),
            mode=[],
            http2=False,
            http3=False,
            websocket=False,
            rawtcp=False,
            ssl_insecure=False,
            ssl_verify_upstream_trusted_ca=None if bundle is None else str(bundle),
        )
        master = Master(opts)
        # Token endpoints are trusted like upstream servers.
        tokens = OAuthTokens(TokenEndpoint(bundle))
        # Only what the egress path needs (mitmproxy's 31 defaults cost ~2 ms CPU a request).
        # PolicyAddon comes before TlsConfig: it pins the upstream SNI TlsConfig then uses.
        # mitmproxy leaves these untyped.
        master.addons.add(  # type: ignore[no-untyped-call]
            proxyserver.Proxyserver(),  # type: ignore[no-untyped-call]
            next_layer.NextLayer(),
            PolicyAddon(self._table, sink),
            OAuthAddon(tokens),
            SwapAddon(),
            SigningAddon(sink),
            ScrubAddon(tokens.scrub_table),
            AuditAddon(sink),
            tlsconfig.TlsConfig(),
            _Running(started),
        )
        opts.update(  # type: ignore[no-untyped-call]
            connection_strategy="eager",
            stream_large_bodies=STREAM_ABOVE,
            body_size_limit=BODY_LIMIT,
            validate_inbound_headers=True,
        )
        return master

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or self._thread is None or not loop.is_running():
            coro.close()
            raise EgressProxyError("the egress proxy is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def _listener_dir(self, sandbox_id: str) -> Path:
        if not _SANDBOX_ID.fullmatch(sandbox_id):
            raise EgressProxyError(f"invalid sandbox id {sandbox_id[:80]!r}")
        return self._options.listeners_dir / sandbox_id


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
