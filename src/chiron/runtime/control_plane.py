"""Builds and runs the server-side parts in order, and stops them in reverse.

One object owns the store, the notifier, the sandbox backend, the execution driver, recovery
and every background loop, so the API's lifespan has exactly one thing to start and stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from chiron.credentials import CredentialRegistry
from chiron.redaction import default_redactor
from chiron.runtime.driver import ExecutionDriver
from chiron.runtime.event_log import EventLog
from chiron.runtime.metrics import Metrics
from chiron.runtime.recovery import RecoveryLoop, new_owner_id
from chiron.runtime.sandbox_allocator import SandboxAllocator
from chiron.runtime.sandbox_egress import SandboxEgress
from chiron.runtime.session_service import SessionService
from chiron.runtime.stdout_pump import StdoutPump
from chiron.runtime.tasks import TaskSet
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from chiron.store.engine import Store
from chiron.store.migrate import upgrade_to_head
from chiron.store.notifier import EventNotifier, PostgresListener

logger = logging.getLogger(__name__)


class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = False
        self.store = Store(settings.resolved_database_url)
        self.notifier = EventNotifier()
        self.metrics = Metrics()
        self.event_log = EventLog(self.store, self.notifier, default_redactor, self.metrics)
        self.backend = LocalSandboxBackend(settings, keep_spare_supervisor=True)
        self.tasks = TaskSet()
        isolation = settings.sandbox_isolation
        self.allocator = SandboxAllocator(
            settings, self.event_log, self.backend, self.tasks, isolation=isolation
        )
        self.driver = ExecutionDriver(
            settings=settings,
            event_log=self.event_log,
            allocator=self.allocator,
            backend=self.backend,
            pump=StdoutPump(self.event_log, default_redactor),
            tasks=self.tasks,
            owner=new_owner_id(),
        )
        self.service = SessionService(
            settings=settings,
            event_log=self.event_log,
            driver=self.driver,
            allocator=self.allocator,
            backend=self.backend,
            isolation_note=self.backend.isolation_note,
        )
        self.registry: CredentialRegistry | None = None
        self.egress: SandboxEgress | None = None
        self.recovery = RecoveryLoop(
            settings=settings,
            event_log=self.event_log,
            driver=self.driver,
            allocator=self.allocator,
            backend=self.backend,
        )

    async def start(self) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.backend.check()
        self.backend.start_spare()
        await upgrade_to_head(self.store)
        # The secrets key is loaded (or made) here, and every stored value is redacted from now on.
        self.registry = CredentialRegistry.from_settings(self.store, self.settings)
        await self.registry.refresh_known_values()
        if self.settings.sandbox_isolation == "bwrap":
            self.egress = SandboxEgress(self.settings, self.event_log, self.registry, self.tasks)
            self.allocator.egress = self.egress
            self.registry.on_change = self.egress.reload_all
        if self.store.is_postgresql:
            listener = PostgresListener(self.settings.resolved_database_url, self.notifier)
            self.tasks.spawn("loop:pg-listen", listener.run())
            await asyncio.wait_for(listener.connected.wait(), timeout=30)
        await self.recovery.start_up()
        self.tasks.spawn("loop:recovery", self.recovery.run_forever())
        self.tasks.spawn("loop:idle-pause", self.recovery.run_idle_pauser())
        self.ready = True

    async def stop(self) -> None:
        """Stop taking executions, let running ones finish (bounded), release leases."""
        self.ready = False
        self.service.accepting = False
        await self.driver.drain(self.settings.shutdown_drain_seconds)
        await self.allocator.close()
        if self.egress is not None:
            await self.egress.stop()
        await self.tasks.close()
        self.backend.close()
        await self.store.dispose()


def load_or_create_admin_key(settings: Settings) -> str:
    """The admin key from settings, else the one kept in home (created 0600 on first start)."""
    if settings.admin_api_key is not None:
        return settings.admin_api_key.get_secret_value()
    path: Path = settings.admin_key_file
    if path.exists():
        return path.read_text().strip()
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = "chiron_admin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
