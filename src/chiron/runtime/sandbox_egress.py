"""Connects sandboxes to the egress proxy: one listener and the principal's config each.

A sandbox gets a listener only when its principal may reach something (a base allowlist or
granted secrets); otherwise it keeps no network at all, which denies the same and costs
nothing (the proxy itself starts with the first listener). When the registry changes, every
listener reloads its principal's config; a sandbox that was made without network but now
needs it is replaced on its next turn. Audit records are stored in batches; refused requests
become `session.egress_denied` events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from chiron.credentials import CredentialRegistry, EffectiveConfig, ImplicitAccess
from chiron.egress import AuditRecord, EgressOptions, EgressProxy
from chiron.egress.effective_config_adapter import proxy_config_from_effective
from chiron.runtime.brokered_tokens import BrokeredTokens, BrokerError
from chiron.runtime.event_log import EventLog
from chiron.runtime.model_access import ModelAccess
from chiron.runtime.tasks import TaskSet
from chiron.sandbox.backend import EgressBinding, SandboxError
from chiron.settings import Settings
from chiron.store import credential_queries

logger = logging.getLogger(__name__)

_AUDIT_FLUSH_S = 0.5


@dataclass(frozen=True)
class SandboxNetwork:
    """What a new sandbox gets: its proxy binding (None: no network) and placeholder env."""

    binding: EgressBinding | None
    env: dict[str, str]


@dataclass(frozen=True)
class _Bound:
    thread_key: str
    principal_id: str
    implicit: ImplicitAccess | None


class SandboxEgress:
    def __init__(
        self, settings: Settings, event_log: EventLog, registry: CredentialRegistry, tasks: TaskSet
    ) -> None:
        self._log = event_log
        self._registry = registry
        self._tasks = tasks
        self._brokered = BrokeredTokens(
            event_log.redactor,
            upstream_ca=settings.egress_upstream_ca,
            resolve=settings.egress_resolve,
        )
        self.proxy = EgressProxy(
            EgressOptions.from_settings(settings),
            on_audit=self._on_audit,
            on_denied=self._on_denied,
        )
        self._bound: dict[str, _Bound] = {}
        self._audit: list[AuditRecord] = []
        self._denied: list[tuple[str, str, str, str, str]] = []
        self._started = False
        self._start_lock = asyncio.Lock()
        self._base_allow = tuple(settings.egress_allow)
        # Registry changes made through this process; `_grantless` remembers at which change
        # count the registry was seen to hold no grants at all (then nobody needs network and
        # the per-turn checks cost nothing).
        self._generation = 0
        self._grantless: int | None = None

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self.proxy.start()
                self._tasks.spawn("loop:egress-audit", self._flush_forever())
                self._tasks.spawn("loop:brokered-tokens", self._brokered.run(self.reload_all))
                self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._flush()
            await self.proxy.stop()
            self._started = False
        await self._brokered.close()

    async def network_for(
        self,
        sandbox_id: str,
        thread_key: str,
        principal_id: str,
        model: ModelAccess | None = None,
    ) -> SandboxNetwork:
        """Open `sandbox_id`'s listener and load its principal's config, if it needs one.

        A model harness (`model`) always gets network: its model endpoint is reachable.
        """
        implicit = model.implicit_access() if model is not None else None
        if implicit is None and await self._nobody_needs_network():
            return SandboxNetwork(None, {})
        effective = await self._effective(principal_id, implicit)
        if not effective.allowed_hosts:
            return SandboxNetwork(None, dict(effective.env))
        await self._ensure_started()
        socket_path = await self.proxy.open_listener(sandbox_id)
        await self.proxy.load(sandbox_id, proxy_config_from_effective(effective))
        self._bound[sandbox_id] = _Bound(thread_key, principal_id, implicit)
        return SandboxNetwork(
            EgressBinding(socket_path, self.proxy.ca_cert_path), dict(effective.env)
        )

    async def needs_new_sandbox(
        self, sandbox_id: str, principal_id: str, model: ModelAccess | None = None
    ) -> bool:
        """True when a sandbox made without network now has somewhere to go."""
        implicit = model.implicit_access() if model is not None else None
        if (
            sandbox_id in self._bound
            or (implicit is None and await self._nobody_needs_network())
            or self.was_bound(sandbox_id)
        ):
            return False
        effective = await self._registry.effective(principal_id, implicit=implicit)
        return bool(effective.allowed_hosts)

    def was_bound(self, sandbox_id: str) -> bool:
        return self.proxy.socket_path(sandbox_id).parent.exists()

    async def rebind(
        self,
        sandbox_id: str,
        thread_key: str,
        principal_id: str,
        model: ModelAccess | None = None,
    ) -> None:
        """After a restart: reopen a running sandbox's listener (it keeps its mount)."""
        await self._ensure_started()
        await self.proxy.open_listener(sandbox_id)
        implicit = model.implicit_access() if model is not None else None
        self._bound[sandbox_id] = _Bound(thread_key, principal_id, implicit)
        await self._reload(sandbox_id)

    async def release(self, sandbox_id: str) -> None:
        self._bound.pop(sandbox_id, None)
        if self._started:
            await self.proxy.close_listener(sandbox_id)

    async def _nobody_needs_network(self) -> bool:
        if self._base_allow:
            return False
        if self._grantless != self._generation:
            if await self._registry.list_grants():
                return False
            self._grantless = self._generation
        return True

    async def reload_all(self) -> None:
        """The registry changed: every listener applies its principal's config anew."""
        self._generation += 1
        for sandbox_id in list(self._bound):
            try:
                await self._reload(sandbox_id)
            except Exception:
                logger.exception("reloading egress config failed", extra={"sandbox_id": sandbox_id})

    async def _reload(self, sandbox_id: str) -> None:
        bound = self._bound[sandbox_id]
        effective = await self._effective(bound.principal_id, bound.implicit)
        await self.proxy.load(sandbox_id, proxy_config_from_effective(effective))

    async def _effective(
        self, principal_id: str, implicit: ImplicitAccess | None
    ) -> EffectiveConfig:
        """The principal's config with values; a brokered secret's value is its current token."""
        effective = await self._registry.effective(
            principal_id, with_values=True, implicit=implicit
        )
        values = dict(effective.values)
        for granted in effective.secrets:
            spec = granted.spec
            if spec.broker is not None and spec.name in values:
                try:
                    values[spec.name] = await self._brokered.token_for(
                        spec.name, spec.broker, values[spec.name]
                    )
                except BrokerError as error:
                    raise SandboxError(f"cannot give the sandbox network: {error}") from None
        return dataclasses.replace(effective, values=values)

    # -- callbacks from the proxy (on this loop; must not block) -------------------------

    def _on_audit(self, record: AuditRecord) -> None:
        self._audit.append(record)

    def _on_denied(self, sandbox_id: str, host: str, method: str, rule: str) -> None:
        bound = self._bound.get(sandbox_id)
        if bound is not None:
            self._denied.append((bound.thread_key, sandbox_id, host, method, rule))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_AUDIT_FLUSH_S)
            try:
                await self._flush()
            except Exception:
                logger.exception("storing egress audit records failed")

    async def _flush(self) -> None:
        records, self._audit = self._audit, []
        denied, self._denied = self._denied, []
        if not records and not denied:
            return
        async with self._log.write() as tx:
            for record in records:
                bound = self._bound.get(record.sandbox_id)
                await credential_queries.insert_audit_record(
                    tx.conn,
                    time=datetime.fromtimestamp(record.time, UTC),
                    sandbox_id=record.sandbox_id,
                    thread_key=bound.thread_key if bound else None,
                    principal_id=record.principal_id,
                    host=record.host,
                    method=record.method,
                    path=record.path,
                    status=record.status,
                    secret_names=list(record.secrets),
                    bytes_in=record.request_bytes,
                    bytes_out=record.response_bytes,
                    duration_ms=int(record.duration_ms),
                )
            for thread_key, sandbox_id, host, method, rule in denied:
                tx.append(
                    thread_key,
                    "session.egress_denied",
                    sandbox_id=sandbox_id,
                    host=host,
                    method=method,
                    rule=rule,
                )
