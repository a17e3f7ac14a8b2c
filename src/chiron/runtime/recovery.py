"""Recovery after a restart, and periodically: replay queued executions, adopt running ones
whose owner is gone, fail the ones whose sandbox is gone, reconcile sandboxes with the store,
and pause sandboxes that sat idle past their deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from chiron.runtime.driver import ExecutionDriver
from chiron.runtime.event_log import EventLog
from chiron.runtime.sandbox_allocator import SandboxAllocator
from chiron.sandbox.backend import SandboxBackend, SandboxError, SandboxState
from chiron.settings import Settings
from chiron.store import execution_queries, sandbox_queries, session_queries
from chiron.store.types import utcnow

logger = logging.getLogger(__name__)


def new_owner_id() -> str:
    """`host:pid:nonce`: lets a restarted process on the same host tell a dead owner at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def owner_is_dead(owner: str, me: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, _nonce = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or owner == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # same pid, other nonce: an earlier life of this process slot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RecoveryLoop:
    def __init__(
        self,
        *,
        settings: Settings,
        event_log: EventLog,
        driver: ExecutionDriver,
        allocator: SandboxAllocator,
        backend: SandboxBackend,
    ) -> None:
        self._settings = settings
        self._log = event_log
        self._driver = driver
        self._allocator = allocator
        self._backend = backend

    async def start_up(self) -> None:
        """Run once before the API reports ready."""
        await self.sweep_orphans()
        await self.scan()

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.recovery_scan_seconds)
            try:
                await self.scan()
            except Exception:
                logger.exception("recovery scan failed")

    async def run_idle_pauser(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.pause_idle()
            except Exception:
                logger.exception("idle pause failed")

    async def scan(self) -> None:
        async with self._log.store.read() as conn:
            queued = await execution_queries.list_by_status(conn, "queued")
            running = await execution_queries.list_by_status(conn, "running")
        for execution in queued:
            self._driver.kick(execution.execution_id, replayed=True)
        owners = {e.lease_owner for e in running if e.lease_owner}
        dead = [o for o in owners if owner_is_dead(o, self._driver.owner)]
        for execution in running:
            if self._driver.is_driving(execution.execution_id):
                continue
            if execution.lease_owner == self._driver.owner:
                dead_owners = [self._driver.owner]  # ours, but nothing here drives it any more
            else:
                dead_owners = dead
            async with self._log.write() as tx:
                taken = await execution_queries.take_over_lease(
                    tx.conn,
                    execution.execution_id,
                    owner=self._driver.owner,
                    lease_seconds=self._settings.lease_seconds,
                    dead_owners=dead_owners,
                )
            if taken:
                logger.info("adopting execution", extra={"execution_id": execution.execution_id})
                self._driver.adopt(execution)

    async def sweep_orphans(self) -> None:
        """Stop sandboxes no live session points at; mark rows whose sandbox is gone."""
        async with self._log.store.read() as conn:
            rows = {row.sandbox_id: row for row in await sandbox_queries.live_sandboxes(conn)}
            wanted: set[str] = set()
            for row in rows.values():
                session = await session_queries.get_session(conn, row.thread_key)
                if (
                    session is not None
                    and session.sandbox_id == row.sandbox_id
                    and session.status != "archived"
                ):
                    wanted.add(row.sandbox_id)
        for info in await self._backend.list():
            if info.sandbox_id not in wanted:
                logger.info("stopping orphan sandbox", extra={"sandbox_id": info.sandbox_id})
                await self._allocator.discard(info.sandbox_id)
        for sandbox_id in wanted:
            state = await self._backend.status(sandbox_id)
            if state in (SandboxState.GONE, SandboxState.STOPPED):
                async with self._log.write() as tx:
                    await sandbox_queries.update_sandbox(tx.conn, sandbox_id, state="gone")
            elif (egress := self._allocator.egress) is not None and egress.was_bound(sandbox_id):
                # Its network ran through this process's proxy: open its listener again.
                row = rows[sandbox_id]
                async with self._log.store.read() as conn:
                    session = await session_queries.get_session(conn, row.thread_key)
                if session is not None:
                    await egress.rebind(
                        sandbox_id,
                        row.thread_key,
                        session.principal_id,
                        self._allocator.model_for(session),
                    )

    async def pause_idle(self) -> None:
        async with self._log.store.read() as conn:
            due = await sandbox_queries.due_for_idle_pause(conn, utcnow())
        for row in due:
            async with self._log.store.read() as conn:
                active = await execution_queries.active_execution(conn, row.thread_key)
            if active is not None:
                continue
            try:
                async with self._allocator.lock(row.thread_key):
                    paused = await self._allocator.pause(row.sandbox_id)
            except SandboxError:
                logger.warning("idle pause failed", extra={"sandbox_id": row.sandbox_id})
                continue
            async with self._log.write() as tx:
                if not paused:
                    await sandbox_queries.update_sandbox(
                        tx.conn, row.sandbox_id, idle_pause_at=None
                    )
                    continue
                tx.append(
                    row.thread_key,
                    "session.sandbox_paused",
                    sandbox_id=row.sandbox_id,
                    reason="idle",
                )
