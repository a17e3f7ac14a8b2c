"""Gives a session a running sandbox: reuse, resume or create, and records what it did.

A created sandbox is stored by the caller (`record_created`, in the transaction recording the
turn's start); the orphan sweep at start-up stops sandboxes no session points at.

A session without a sandbox gets one started early (`start_early`) the moment an execution is
being queued for it, so the sandbox boots while the execution is inserted and claimed; `ensure`
takes it over, and whatever ends up not needing it stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from chiron.runtime.event_log import EventLog
from chiron.runtime.model_access import ModelAccess, model_access
from chiron.runtime.sandbox_egress import SandboxEgress, SandboxNetwork
from chiron.runtime.tasks import TaskSet
from chiron.sandbox.backend import (
    ResourceLimits,
    SandboxBackend,
    SandboxError,
    SandboxLost,
    SandboxSpec,
    SandboxState,
)
from chiron.settings import Settings
from chiron.store import sandbox_queries, session_queries
from chiron.store.records import SessionRecord, new_id
from chiron.store.types import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadySandbox:
    sandbox_id: str
    source: str  # reused | resumed | cold_create
    duration_ms: int
    replaced: str | None = None


@dataclass(frozen=True)
class EarlySandbox:
    """A sandbox being created for a session before its execution was claimed."""

    sandbox_id: str
    harness_type: str
    principal_id: str | None
    serving: asyncio.Event
    task: asyncio.Task[str]
    started: float = field(default_factory=time.monotonic)

    def fits(self, session: SessionRecord) -> bool:
        return (self.harness_type, self.principal_id) == (
            session.harness_type,
            session.principal_id,
        )

    async def wait_serving(self) -> None:
        """Until input can be written to it; raises SandboxLost if its creation ended first."""
        waiter = asyncio.ensure_future(self.serving.wait())
        try:
            await asyncio.wait([waiter, self.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self.serving.is_set():
            raise SandboxLost(f"sandbox {self.sandbox_id} did not start")


class SandboxAllocator:
    def __init__(
        self,
        settings: Settings,
        event_log: EventLog,
        backend: SandboxBackend,
        tasks: TaskSet,
        *,
        isolation: str,
    ) -> None:
        self._settings = settings
        self._log = event_log
        self._backend = backend
        self._tasks = tasks
        self.isolation = isolation
        self._locks: dict[str, asyncio.Lock] = {}
        self._early: dict[str, EarlySandbox] = {}
        # Set by the control plane when sandboxes get network through the egress proxy.
        self.egress: SandboxEgress | None = None

    def lock(self, thread_key: str) -> asyncio.Lock:
        return self._locks.setdefault(thread_key, asyncio.Lock())

    def start_early(self, session: SessionRecord) -> bool:
        """Begin creating the sandbox a session without one is about to need.

        True when this call started one; whoever started it and then fails to queue the
        execution calls `cancel_early`. `ensure` takes the sandbox over.
        """
        thread_key = session.thread_key
        if (
            session.sandbox_id is not None
            or thread_key in self._early
            # `ensure` is at work for this session: a sandbox is on its way or in use.
            or self.lock(thread_key).locked()
        ):
            return False
        sandbox_id = new_id("sbx")
        serving = asyncio.Event()
        task = self._tasks.spawn(
            f"sandbox-early:{sandbox_id}",
            self._create(session, sandbox_id, on_serving=serving.set),
        )
        self._early[thread_key] = EarlySandbox(
            sandbox_id, session.harness_type, session.principal_id, serving, task
        )
        return True

    def upcoming_sandbox(self, session: SessionRecord) -> EarlySandbox | None:
        """The sandbox started early that `ensure` will give this session, if there is one."""
        early = self._early.get(session.thread_key)
        if early is None or session.sandbox_id is not None or not early.fits(session):
            return None
        return early

    def cancel_early(self, thread_key: str) -> None:
        """Stop the sandbox started early for this session, if `ensure` has not taken it."""
        early = self._early.pop(thread_key, None)
        if early is not None:
            self._tasks.spawn(f"sandbox-early-stop:{early.sandbox_id}", self._stop_early(early))

    async def close(self) -> None:
        """Stop every sandbox started early and never taken (at shutdown)."""
        early, self._early = list(self._early.values()), {}
        await asyncio.gather(*(self._stop_early(e) for e in early))

    async def _stop_early(self, early: EarlySandbox) -> None:
        await asyncio.wait([early.task])
        if early.task.cancelled() or early.task.exception() is not None:
            return  # a create that did not finish cleaned up after itself
        await self.discard(early.sandbox_id)

    async def ensure(self, session: SessionRecord) -> ReadySandbox:
        started = time.monotonic()
        async with self.lock(session.thread_key):
            early = self._early.pop(session.thread_key, None)
            if early is not None and (session.sandbox_id is not None or not early.fits(session)):
                self._tasks.spawn(f"sandbox-early-stop:{early.sandbox_id}", self._stop_early(early))
                early = None
            replaced: str | None = None
            if session.sandbox_id is not None:
                state = await self._backend.status(session.sandbox_id)
                live = state in (SandboxState.RUNNING, SandboxState.SUSPENDED)
                if (
                    live
                    and self.egress is not None
                    and await self.egress.needs_new_sandbox(
                        session.sandbox_id, session.principal_id, self.model_for(session)
                    )
                ):
                    state = SandboxState.GONE  # made without network; it needs some now
                if state is SandboxState.RUNNING:
                    return self._ready(session.sandbox_id, "reused", started)
                if state is SandboxState.SUSPENDED:
                    await self._backend.resume(session.sandbox_id)
                    await self._set_state(session.sandbox_id, "running")
                    return self._ready(session.sandbox_id, "resumed", started)
                replaced = session.sandbox_id
                await self.discard(session.sandbox_id)
            if early is not None:
                # Its creation time is what the sandbox took, not the part left to wait for.
                sandbox_id, started = await early.task, early.started
            else:
                sandbox_id = await self._create(session, new_id("sbx"))
            ready = self._ready(sandbox_id, "cold_create", started)
            return ReadySandbox(ready.sandbox_id, ready.source, ready.duration_ms, replaced)

    async def _create(
        self,
        session: SessionRecord,
        sandbox_id: str,
        *,
        on_serving: Callable[[], None] | None = None,
    ) -> str:
        model = self.model_for(session)
        network = SandboxNetwork(None, {})
        if self.egress is not None:
            network = await self.egress.network_for(
                sandbox_id, session.thread_key, session.principal_id, model
            )
        model_env = model.env if model is not None else {}
        spec = SandboxSpec(
            sandbox_id=sandbox_id,
            harness=session.harness_type,
            limits=ResourceLimits(
                memory_bytes=self._settings.sandbox_memory_bytes,
                cpu_seconds=self._settings.sandbox_cpu_seconds,
                max_processes=self._settings.sandbox_max_processes,
                file_bytes=self._settings.sandbox_file_bytes,
            ),
            env={**model_env, **network.env, "CHIRON_THREAD_KEY": session.thread_key},
            labels={"thread_key": session.thread_key, "harness": session.harness_type},
            principal_id=session.principal_id,
            egress=network.binding,
            read_only_mounts=dict(model.mounts) if model is not None else {},
        )
        try:
            await self._backend.create(spec, on_serving=on_serving)
        except BaseException:
            if self.egress is not None:
                await self.egress.release(sandbox_id)
            raise
        return sandbox_id

    def record_created(self, conn: sa.Connection, session: SessionRecord, sandbox_id: str) -> None:
        """Store a sandbox `ensure` just created and point the session at it.

        The caller does it in the transaction that records the turn's start, which saves a
        commit on the cold-start path. Until then no session points at the sandbox: after a
        crash the orphan sweep at start-up stops it.
        """
        sandbox_queries.insert_sandbox_sync(
            conn,
            sandbox_id=sandbox_id,
            thread_key=session.thread_key,
            backend=self._settings.sandbox_backend,
            harness_type=session.harness_type,
        )
        session_queries.update_session_sync(conn, session.thread_key, sandbox_id=sandbox_id)

    def model_for(self, session: SessionRecord) -> ModelAccess | None:
        return model_access(
            self._settings, session.harness_type, isolated=self.isolation == "bwrap"
        )

    async def discard(self, sandbox_id: str) -> None:
        """Stop a sandbox (idempotent) and mark its row stopped."""
        try:
            await self._backend.stop(sandbox_id)
        except SandboxError:
            logger.warning("stopping sandbox failed", extra={"sandbox_id": sandbox_id})
        if self.egress is not None:
            await self.egress.release(sandbox_id)
        await self._set_state(sandbox_id, "stopped")

    async def pause(self, sandbox_id: str) -> bool:
        if await self._backend.status(sandbox_id) is not SandboxState.RUNNING:
            return False
        await self._backend.pause(sandbox_id)
        await self._set_state(sandbox_id, "suspended")
        return True

    async def resume(self, sandbox_id: str) -> bool:
        if await self._backend.status(sandbox_id) is not SandboxState.SUSPENDED:
            return False
        await self._backend.resume(sandbox_id)
        await self._set_state(sandbox_id, "running")
        return True

    async def schedule_idle_pause(self, sandbox_id: str, idle_timeout_ms: int) -> None:
        async with self._log.write() as tx:
            await sandbox_queries.update_sandbox(
                tx.conn,
                sandbox_id,
                **sandbox_queries.touch_values(utcnow() + timedelta(milliseconds=idle_timeout_ms)),
            )

    async def _set_state(self, sandbox_id: str, state: str) -> None:
        async with self._log.write() as tx:
            values = {"state": state}
            if state != "running":
                values["idle_pause_at"] = None  # type: ignore[assignment]
            await sandbox_queries.update_sandbox(tx.conn, sandbox_id, **values)

    @staticmethod
    def _ready(sandbox_id: str, source: str, started: float) -> ReadySandbox:
        return ReadySandbox(sandbox_id, source, int((time.monotonic() - started) * 1000))
