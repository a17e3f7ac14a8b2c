"""Session operations behind the HTTP API: create, messages, execute, interrupt, pause, archive.

Every state change is committed (with its event) before the method returns, so an HTTP answer
never reports something the store does not hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc

from chiron.harness.registry import KNOWN_HARNESSES
from chiron.runtime.driver import ExecutionDriver
from chiron.runtime.errors import Conflict, InvalidInput, NotFound, Unavailable, Unprocessable
from chiron.runtime.event_log import EventLog, event_payload
from chiron.runtime.sandbox_allocator import SandboxAllocator
from chiron.runtime.thread_keys import validate_thread_key
from chiron.sandbox.backend import SandboxBackend, SandboxError
from chiron.settings import Settings
from chiron.store import execution_queries, message_queries, session_queries
from chiron.store.event_queries import append_events_sync
from chiron.store.records import EventRecord, ExecutionRecord, NewEvent, SessionRecord, new_id


@dataclass(frozen=True)
class CreatedSession:
    session: SessionRecord
    created: bool
    harness_switched: bool


@dataclass(frozen=True)
class NewMessage:
    role: str
    parts: list[Any]
    client_message_id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExecuteRequest:
    input_lines: list[str]
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None
    idle_timeout_ms: int | None = None
    max_duration_ms: int | None = None


class SessionService:
    def __init__(
        self,
        *,
        settings: Settings,
        event_log: EventLog,
        driver: ExecutionDriver,
        allocator: SandboxAllocator,
        backend: SandboxBackend,
        isolation_note: str | None,
    ) -> None:
        self._settings = settings
        self._log = event_log
        self._driver = driver
        self._allocator = allocator
        self._backend = backend
        self._isolation_note = isolation_note
        self.accepting = True

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self,
        thread_key: str,
        *,
        harness_type: str,
        persona_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_harness_conflict: str = "reject",
    ) -> CreatedSession:
        validate_thread_key(thread_key)
        if harness_type not in KNOWN_HARNESSES:
            raise Unprocessable(
                f"unknown harness_type {harness_type!r}; "
                f"known: {', '.join(sorted(KNOWN_HARNESSES))}",
                code="unknown_harness",
            )
        async with self._log.write() as tx:
            created = await session_queries.insert_session_if_absent(
                tx.conn,
                thread_key=thread_key,
                harness_type=harness_type,
                persona_id=persona_id,
                principal_id=new_id("prn"),
                metadata=metadata or {},
            )
            if created and self._isolation_note:
                tx.append(thread_key, "session.isolation_disabled", note=self._isolation_note)
            session = await session_queries.get_session(tx.conn, thread_key, for_update=True)
            assert session is not None
            if created or session.harness_type == harness_type:
                return CreatedSession(session, created, harness_switched=False)
            if session.status == "archived":
                raise Conflict(f"session {thread_key} is archived", code="session_archived")
            if on_harness_conflict != "restart":
                raise Conflict(
                    f"session {thread_key} runs harness {session.harness_type!r}, "
                    f"not {harness_type!r}",
                    code="harness_conflict",
                    existing_harness=session.harness_type,
                    requested_harness=harness_type,
                )
            active = await execution_queries.active_execution(tx.conn, thread_key)
            if active is not None:
                raise Conflict(
                    "cannot switch harness while an execution is active",
                    code="execution_active",
                    execution_id=active.execution_id,
                )
            old_sandbox = session.sandbox_id
            await session_queries.update_session(
                tx.conn,
                thread_key,
                harness_type=harness_type,
                sandbox_id=None,
                harness_thread_id=None,
            )
            tx.append(
                thread_key,
                "session.harness_switched",
                old_harness=session.harness_type,
                new_harness=harness_type,
            )
        self._allocator.cancel_early(thread_key)
        if old_sandbox is not None:
            await self._allocator.discard(old_sandbox)
        return CreatedSession(await self.get_session(thread_key), False, harness_switched=True)

    async def get_session(self, thread_key: str) -> SessionRecord:
        validate_thread_key(thread_key)
        async with self._log.store.read() as conn:
            session = await session_queries.get_session(conn, thread_key)
        if session is None:
            raise NotFound(f"no session {thread_key}", code="session_not_found")
        return session

    async def archive(self, thread_key: str) -> SessionRecord:
        session = await self.get_session(thread_key)
        active = await self._active(thread_key)
        if active is not None:
            await self.interrupt(thread_key, reason="archived")
        async with self._log.write() as tx:
            await session_queries.update_session(tx.conn, thread_key, status="archived")
            tx.append(thread_key, "session.archived")
        self._allocator.cancel_early(thread_key)
        if session.sandbox_id is not None:
            async with self._allocator.lock(thread_key):
                await self._allocator.discard(session.sandbox_id)
        return await self.get_session(thread_key)

    # -- messages -------------------------------------------------------------------------

    async def append_messages(self, thread_key: str, new_messages: list[NewMessage]) -> list[str]:
        if not new_messages:
            raise InvalidInput("messages must not be empty", code="empty_messages")
        await self._require_open(thread_key)
        ids: list[str] = []
        steering: list[NewMessage] = []
        async with self._log.write() as tx:
            for message in new_messages:
                message_id, created = await message_queries.append_message(
                    tx.conn,
                    thread_key,
                    client_message_id=message.client_message_id,
                    role=message.role,
                    parts=message.parts,
                    metadata=message.metadata or {},
                )
                ids.append(message_id)
                if created and message.role == "user":
                    steering.append(message)
        active = await self._active(thread_key)
        if steering and active is not None and active.status == "running":
            await self._steer(active, steering)
        return ids

    async def _steer(self, execution: ExecutionRecord, messages: list[NewMessage]) -> None:
        lines = [
            json.dumps(
                {"type": "user", "message": {"role": "user", "content": m.parts}},
                separators=(",", ":"),
            )
            for m in messages
        ]
        delivered = execution.sandbox_id is not None
        error = "the execution has no sandbox yet"
        if execution.sandbox_id is not None:
            try:
                await self._backend.write_input(execution.sandbox_id, lines, token=new_id("steer"))
            except SandboxError as exc:
                delivered, error = False, str(exc)
        async with self._log.write() as tx:
            if delivered:
                tx.append(
                    execution.thread_key,
                    "session.steering_delivered",
                    execution.execution_id,
                    message_count=len(lines),
                )
            else:
                tx.append(
                    execution.thread_key,
                    "session.steering_failed",
                    execution.execution_id,
                    error=error,
                )

    # -- executions -----------------------------------------------------------------------

    async def execute(self, thread_key: str, request: ExecuteRequest) -> tuple[str, str]:
        """Queue an execution; returns its id and status (an idempotent replay's, if any)."""
        if not self.accepting:
            raise Unavailable("the server is shutting down", code="shutting_down")
        for index, line in enumerate(request.input_lines):
            if "\n" in line or "\r" in line:
                raise InvalidInput(
                    f"input_lines[{index}] contains a line break; each entry is one NDJSON line",
                    code="invalid_input_line",
                )
        for name in ("idle_timeout_ms", "max_duration_ms"):
            value = getattr(request, name)
            if value is not None and value <= 0:
                raise InvalidInput(f"{name} must be > 0, got {value}", code="invalid_duration")
        if (
            request.idle_timeout_ms is not None
            and request.max_duration_ms is not None
            and request.idle_timeout_ms > request.max_duration_ms
        ):
            raise InvalidInput(
                "idle_timeout_ms must not exceed max_duration_ms", code="invalid_duration"
            )
        session = await self._require_open(thread_key)
        if request.idempotency_key is not None:
            existing = await self._by_key(thread_key, request.idempotency_key)
            if existing is not None:
                return existing.execution_id, existing.status
        # The sandbox a new session needs boots while the execution is queued and claimed.
        started_early = self._allocator.start_early(session)
        execution_id = new_id("exe")
        try:
            origin = self._log.notifier.origin
            queued = NewEvent(
                "session.execution_queued",
                event_payload(
                    self._log.redactor,
                    thread_key,
                    execution_id,
                    input_line_count=len(request.input_lines),
                ),
                execution_id,
            )

            def queue(conn: sa.Connection) -> list[EventRecord]:
                execution_queries.insert_queued_sync(
                    conn,
                    execution_id=execution_id,
                    thread_key=session.thread_key,
                    idempotency_key=request.idempotency_key,
                    request={
                        "input_lines": request.input_lines,
                        "metadata": request.metadata or {},
                        "idle_timeout_ms": request.idle_timeout_ms,
                        "max_duration_ms": request.max_duration_ms,
                    },
                )
                return append_events_sync(conn, thread_key, [queued], origin=origin)

            await self._log.write_sync(thread_key, queue)
        except BaseException as exc:
            if started_early:
                self._allocator.cancel_early(thread_key)
            if not isinstance(exc, sqlalchemy.exc.IntegrityError):
                raise
            if request.idempotency_key is not None:
                existing = await self._by_key(thread_key, request.idempotency_key)
                if existing is not None:
                    return existing.execution_id, existing.status
            active = await self._active(thread_key)
            raise Conflict(
                "another execution is active in this session"
                + (f": {active.execution_id}" if active else ""),
                code="execution_active",
                execution_id=active.execution_id if active else None,
            ) from None
        self._driver.kick(execution_id)
        return execution_id, "queued"

    async def get_execution(self, thread_key: str, execution_id: str) -> ExecutionRecord:
        validate_thread_key(thread_key)
        async with self._log.store.read() as conn:
            execution = await execution_queries.get_execution(conn, execution_id)
        if execution is None or execution.thread_key != thread_key:
            raise NotFound(
                f"no execution {execution_id} in {thread_key}", code="execution_not_found"
            )
        return execution

    async def interrupt(self, thread_key: str, *, reason: str | None) -> tuple[bool, str | None]:
        await self.get_session(thread_key)
        active = await self._active(thread_key)
        if active is None:
            return False, None
        reason = reason or "interrupted"
        if active.status == "queued":
            async with self._log.write() as tx:
                if await execution_queries.finish(
                    tx.conn, active.execution_id, status="cancelled", owner=None, reason=reason
                ):
                    tx.append(
                        thread_key,
                        "session.execution_cancelled",
                        active.execution_id,
                        reason=reason,
                    )
                    await session_queries.update_session(tx.conn, thread_key, status="idle")
                    return True, active.execution_id
            active = await self._active(thread_key)
            if active is None:
                return False, None
        requested = False
        if active.output_offset is None:
            # Its input may not be in the sandbox yet: the driver holds it back or follows it
            # with the interrupt. Then look again, in case the input went in meanwhile.
            requested = self._driver.request_interrupt(active.execution_id, reason)
            active = await self.get_execution(thread_key, active.execution_id)
            if requested and active.output_offset is None:
                return True, active.execution_id
        sandbox_id = active.sandbox_id or (await self.get_session(thread_key)).sandbox_id
        if sandbox_id is None:
            return requested, active.execution_id
        line = json.dumps({"type": "interrupt", "reason": reason})
        try:
            await self._backend.write_input(sandbox_id, [line], token=new_id("int"))
        except SandboxError:
            return requested, active.execution_id
        async with self._log.write() as tx:
            tx.append(thread_key, "session.interrupt_delivered", active.execution_id, reason=reason)
        return True, active.execution_id

    # -- sandbox control ------------------------------------------------------------------

    async def pause(self, thread_key: str) -> bool:
        session = await self._require_open(thread_key)
        if await self._active(thread_key) is not None:
            raise Conflict("cannot pause while an execution is active", code="execution_active")
        if session.sandbox_id is None:
            return False
        async with self._allocator.lock(thread_key):
            paused = await self._allocator.pause(session.sandbox_id)
        if paused:
            async with self._log.write() as tx:
                tx.append(
                    thread_key,
                    "session.sandbox_paused",
                    sandbox_id=session.sandbox_id,
                    reason="requested",
                )
        return paused

    async def resume(self, thread_key: str) -> bool:
        session = await self._require_open(thread_key)
        if session.sandbox_id is None:
            return False
        async with self._allocator.lock(thread_key):
            resumed = await self._allocator.resume(session.sandbox_id)
        if resumed:
            async with self._log.write() as tx:
                tx.append(thread_key, "session.sandbox_resumed", sandbox_id=session.sandbox_id)
        return resumed

    # -- helpers --------------------------------------------------------------------------

    async def _require_open(self, thread_key: str) -> SessionRecord:
        session = await self.get_session(thread_key)
        if session.status == "archived":
            raise Conflict(f"session {thread_key} is archived", code="session_archived")
        return session

    async def _active(self, thread_key: str) -> ExecutionRecord | None:
        async with self._log.store.read() as conn:
            return await execution_queries.active_execution(conn, thread_key)

    async def _by_key(self, thread_key: str, key: str) -> ExecutionRecord | None:
        async with self._log.store.read() as conn:
            return await execution_queries.find_by_idempotency_key(conn, thread_key, key)
