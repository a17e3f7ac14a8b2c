"""Drives one execution from its claim to its terminal event (DESIGN.md §5).

Fresh runs: claim → sandbox ready → record the output offset → write input (once, by token)
→ pump stdout until the turn ends. Adopted runs (after a restart or a lost lease) continue from
the stored offset: the recorded output since the start is re-read to rebuild what the turn
said so far, lines already stored are skipped, and input is written only if the sandbox never
received it. A terminal event is written at most once, under the output lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from chiron.runtime.errors import LeaseLost
from chiron.runtime.event_log import EventLog, LogTransaction, event_payload
from chiron.runtime.sandbox_allocator import EarlySandbox, ReadySandbox, SandboxAllocator
from chiron.runtime.stdout_pump import OutputReadAhead, PumpContext, StdoutPump
from chiron.runtime.tasks import TaskSet
from chiron.runtime.terminal import TurnOutcome, TurnTracker
from chiron.runtime.turn_context import TurnContext
from chiron.sandbox.backend import (
    InputReceipt,
    SandboxBackend,
    SandboxError,
    SandboxLost,
    SandboxState,
)
from chiron.settings import Settings
from chiron.store import execution_queries, message_queries, sandbox_queries, session_queries
from chiron.store.event_queries import append_events_sync
from chiron.store.records import EventRecord, ExecutionRecord, NewEvent, SessionRecord
from chiron.store.types import utcnow

logger = logging.getLogger(__name__)

# How long a harness gets to end a turn it was told to stop at the deadline.
_INTERRUPT_GRACE_S = 5.0

TERMINAL_EVENT = {
    "completed": "session.execution_completed",
    "failed": "session.execution_failed",
    "cancelled": "session.execution_cancelled",
}


@dataclass
class _Finished:
    """The outcome was already committed together with the terminal output line."""


@dataclass
class _RunStart:
    """The start of a claimed run, still to be logged by its first write transaction."""

    replayed: bool
    logged: bool = False
    # Read alongside the claim, so the run does not read it again.
    session: SessionRecord | None = None


class ExecutionDriver:
    def __init__(
        self,
        *,
        settings: Settings,
        event_log: EventLog,
        allocator: SandboxAllocator,
        backend: SandboxBackend,
        pump: StdoutPump,
        tasks: TaskSet,
        owner: str,
    ) -> None:
        self._settings = settings
        self._log = event_log
        self._allocator = allocator
        self._backend = backend
        self._pump = pump
        self._tasks = tasks
        self.owner = owner
        # Interrupts that arrived before the run's input reached its sandbox.
        self._early_interrupts: dict[str, str] = {}
        # Outcomes decided by the driver (a deadline) that win over what the harness reports.
        self._forced_outcomes: dict[str, TurnOutcome] = {}
        self._context = TurnContext(event_log.store, settings.overlay_dirs)

    # -- entry points ---------------------------------------------------------------------

    def kick(self, execution_id: str, *, replayed: bool = False) -> None:
        """Try to claim and drive a queued execution in the background."""
        name = f"exec:{execution_id}"
        if name not in self._tasks:
            self._tasks.spawn(name, self._drive_queued(execution_id, replayed=replayed))

    def adopt(self, execution: ExecutionRecord) -> None:
        """Continue a running execution whose lease this process just took over."""
        name = f"exec:{execution.execution_id}"
        if name not in self._tasks:
            self._tasks.spawn(name, self._drive_adopted(execution))

    def is_driving(self, execution_id: str) -> bool:
        return f"exec:{execution_id}" in self._tasks

    def request_interrupt(self, execution_id: str, reason: str) -> bool:
        """Interrupt a run driven here even if its input is not in the sandbox yet."""
        if not self.is_driving(execution_id):
            return False
        self._early_interrupts[execution_id] = reason
        return True

    async def drain(self, timeout: float) -> None:
        await self._tasks.wait(timeout, prefix="exec:")

    # -- lifecycle --------------------------------------------------------------------------

    async def _drive_queued(self, execution_id: str, *, replayed: bool) -> None:
        # The claim transaction is kept to the one statement that decides who drives; the
        # `execution_started` event rides along with the run's next write (see _RunStart).
        async def claim() -> ExecutionRecord | None:
            return await self._log.store.run_write(
                partial(
                    execution_queries.claim_sync,
                    execution_id=execution_id,
                    owner=self.owner,
                    lease_seconds=self._settings.lease_seconds,
                )
            )

        # The session is read (on a reader) while the claim is written.
        execution, session = await asyncio.gather(claim(), self._session_of(execution_id))
        if execution is not None:
            await self._supervise(execution, start=_RunStart(replayed=replayed, session=session))
        elif session is not None:
            # Cancelled while queued, or claimed elsewhere: the early sandbox is not ours to use.
            self._allocator.cancel_early(session.thread_key)

    async def _drive_adopted(self, execution: ExecutionRecord) -> None:
        mode = "live_attach"
        if execution.sandbox_id is None or (
            await self._backend.status(execution.sandbox_id) is not SandboxState.RUNNING
        ):
            mode = "recorded_output"
        async with self._log.write() as tx:
            await self._require_lease(tx, execution.execution_id)
            tx.append(
                execution.thread_key, "session.execution_adopted", execution.execution_id, mode=mode
            )
        await self._supervise(execution, start=None)

    async def _supervise(self, execution: ExecutionRecord, *, start: _RunStart | None) -> None:
        """Run the turn under its deadline; `start` is None for an adopted execution."""
        tracker = TurnTracker()
        started_at = execution.started_at or utcnow()
        deadline = started_at + timedelta(milliseconds=self._max_duration_ms(execution))
        remaining = max(0.0, (deadline - utcnow()).total_seconds())
        turn = asyncio.ensure_future(self._turn(execution, tracker, start))
        heartbeat = asyncio.ensure_future(self._heartbeat(execution.execution_id))
        outcome: TurnOutcome | _Finished | None = None
        self._log.metrics.executions_driving.inc()
        try:
            done, _ = await asyncio.wait(
                {turn, heartbeat}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                # Past the deadline: ask the harness to stop and give it a moment, so the
                # turn's last lines (and its end) stay with this execution, not the next.
                forced = TurnOutcome(
                    status="failed",
                    error=(
                        f"execution exceeded its maximum duration of "
                        f"{self._max_duration_ms(execution)} ms"
                    ),
                    reason="max_duration_exceeded",
                )
                self._forced_outcomes[execution.execution_id] = forced
                await self._interrupt_quietly(execution, "max_duration_exceeded")
                done, _ = await asyncio.wait(
                    {turn, heartbeat},
                    timeout=_INTERRUPT_GRACE_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    turn.cancel()
                    outcome = forced
            if turn in done:
                outcome = turn.result()
            elif heartbeat in done:
                return  # lease lost: another process drives this execution now
        except LeaseLost:
            return
        except SandboxLost as error:
            outcome = TurnOutcome(
                status="failed", error=f"sandbox lost: {error}", reason="sandbox_lost"
            )
        except SandboxError as error:
            outcome = TurnOutcome(status="failed", error=str(error), reason="sandbox_error")
        except asyncio.CancelledError:
            await asyncio.shield(self._release_lease(execution.execution_id))
            raise
        except Exception:
            logger.exception("execution crashed", extra={"execution_id": execution.execution_id})
            outcome = TurnOutcome(status="failed", error="internal error", reason="internal_error")
        finally:
            self._early_interrupts.pop(execution.execution_id, None)
            self._forced_outcomes.pop(execution.execution_id, None)
            self._log.metrics.executions_driving.dec()
            for task in (turn, heartbeat):
                if not task.done():
                    task.cancel()
            await asyncio.gather(turn, heartbeat, return_exceptions=True)
        if isinstance(outcome, TurnOutcome):
            try:
                async with self._log.write() as tx:
                    await tx.run_sync(
                        execution.thread_key,
                        lambda conn: self._append(
                            conn, execution.thread_key, self._log_start(conn, execution, start)
                        ),
                    )
                    await self._finish(tx, execution, outcome, tracker)
            except LeaseLost:
                return

    async def _turn(
        self, execution: ExecutionRecord, tracker: TurnTracker, start: _RunStart | None
    ) -> TurnOutcome | _Finished:
        execution_id = execution.execution_id
        session = start.session if start is not None and start.session is not None else None
        if session is None:
            session = await self._session(execution.thread_key)
        input_lines: list[str] = list(execution.request.get("input_lines") or [])
        located = await self._recorded_output(execution, session) if start is None else None
        output: OutputReadAhead | None = None
        if located is None:
            receipt = None
            writing: asyncio.Future[InputReceipt] | None = None
            early = self._early_interrupts.get(execution_id)
            deliver = bool(input_lines) and early is None
            upcoming = self._allocator.upcoming_sandbox(session) if deliver else None
            if upcoming is not None:
                # The sandbox started early for this session takes its input as soon as its
                # supervisor serves, while the harness still starts.
                writing = self._deliver(
                    execution, session, upcoming.sandbox_id, fresh_sandbox=True, after=upcoming
                )
            try:
                ready = await self._allocator.ensure(session)
            except BaseException:
                if writing is not None:
                    await asyncio.gather(asyncio.shield(writing), return_exceptions=True)
                raise
            self._log.metrics.sandboxes_ready.labels(ready.source).inc()
            if upcoming is not None and ready.sandbox_id != upcoming.sandbox_id:
                # The early sandbox was dropped after all; its copy of the input dies with it.
                if writing is not None:
                    await asyncio.gather(writing, return_exceptions=True)
                writing = None
            if deliver and writing is None:
                # Delivered while the start transaction does its other writes.
                fresh = ready.source == "cold_create"
                writing = self._deliver(execution, session, ready.sandbox_id, fresh_sandbox=fresh)
            # Whether the start may have committed: then a created sandbox may be the session's
            # and must not be stopped (if the commit did fail after all, the sandbox is an
            # orphan that the start-up sweep stops).
            recorded = False

            def record_turn_start(conn: sa.Connection) -> list[EventRecord]:
                nonlocal recorded
                if ready.source == "cold_create":
                    self._allocator.record_created(conn, session, ready.sandbox_id)
                new_events = self._log_start(conn, execution, start)
                new_events += self._record_start(
                    conn, execution, ready.sandbox_id, receipt, ready=ready
                )
                records = self._append(conn, execution.thread_key, new_events)
                recorded = True  # the commit comes next
                return records

            try:
                # The offsets commit only once the input is in: a crash before this point finds
                # the delivery (and its offset) through the token instead.
                if writing is not None:
                    receipt = await writing
                    # Reading starts while the start commits; the first line is often out.
                    output = self._read_ahead(execution_id, ready.sandbox_id, receipt.offset)
                await self._log.write_sync(execution.thread_key, record_turn_start)
            except BaseException as error:
                # Only a cancel leaves the commit's outcome unknown; any other error rolled back.
                recorded = recorded and isinstance(error, asyncio.CancelledError)
                if output is not None:
                    await output.close()
                if writing is not None:
                    # Never cut a delivery half-way: the token makes its outcome findable.
                    await asyncio.gather(asyncio.shield(writing), return_exceptions=True)
                if ready.source == "cold_create" and not recorded:
                    # Never stored: nobody else would ever stop it.
                    await asyncio.shield(self._allocator.discard(ready.sandbox_id))
                raise
            if early is not None and receipt is None and input_lines:
                return TurnOutcome(status="cancelled", reason=early)
            if receipt is None:
                return TurnOutcome(status="completed", completion_reason="allocation_only")
            late = self._early_interrupts.get(execution_id)
            if late is not None:
                try:
                    await self._send_interrupt(ready.sandbox_id, execution_id, late)
                except BaseException:
                    if output is not None:
                        await output.close()
                    raise
            located = (ready.sandbox_id, receipt.offset, receipt.offset)
        sandbox_id, first_offset, stored = located
        ctx = PumpContext(
            thread_key=execution.thread_key,
            execution_id=execution_id,
            owner=self.owner,
            lease_seconds=self._settings.lease_seconds,
            started_at=execution.started_at or utcnow(),
            first_output_seen=execution.first_output_at is not None,
            stored_offset=stored,
        )

        async def finisher(tx: LogTransaction, outcome: TurnOutcome) -> None:
            await self._finish(tx, execution, outcome, tracker)

        if output is None:
            output = self._read_ahead(execution_id, sandbox_id, first_offset)
        outcome = await self._pump.run(ctx, output, tracker, finisher)
        if outcome is None:
            raise SandboxLost("the harness exited before its turn ended")
        return _Finished()

    def _log_start(
        self, conn: sa.Connection, execution: ExecutionRecord, start: _RunStart | None
    ) -> list[NewEvent]:
        """The claimed run's start, once: the session is executing; returns the events."""
        if start is None or start.logged:
            return []
        session_queries.update_session_sync(
            conn, execution.thread_key, status="executing", last_active_at=utcnow()
        )
        new_events: list[NewEvent] = []
        if start.replayed:
            new_events.append(
                self._event(execution, "session.execution_adopted", mode="queued_request")
            )
        new_events.append(
            self._event(
                execution,
                "session.execution_started",
                idle_timeout_ms=self._idle_timeout_ms(execution),
                max_duration_ms=self._max_duration_ms(execution),
            )
        )
        start.logged = True
        return new_events

    def _event(self, execution: ExecutionRecord, event_type: str, **fields: Any) -> NewEvent:
        payload = event_payload(
            self._log.redactor, execution.thread_key, execution.execution_id, **fields
        )
        return NewEvent(event_type, payload, execution.execution_id)

    def _append(
        self, conn: sa.Connection, thread_key: str, new_events: list[NewEvent]
    ) -> list[EventRecord]:
        return append_events_sync(conn, thread_key, new_events, origin=self._log.notifier.origin)

    async def _recorded_output(
        self, execution: ExecutionRecord, session: SessionRecord
    ) -> tuple[str, int, int] | None:
        """Where an adopted execution's output is: (sandbox, start offset, stored offset).

        None when its input never reached a sandbox, so the turn starts from the beginning.
        """
        if execution.sandbox_id is not None and execution.output_offset is not None:
            start = execution.output_start_offset or 0
            return execution.sandbox_id, start, execution.output_offset
        sandbox_id = execution.sandbox_id or session.sandbox_id
        if sandbox_id is None or not execution.request.get("input_lines"):
            return None
        try:
            offset = await self._backend.input_delivered(sandbox_id, execution.execution_id)
        except SandboxError:
            return None
        if offset is None:
            return None
        receipt = InputReceipt(offset=offset, written=True)
        await self._log.write_sync(
            execution.thread_key,
            lambda conn: self._append(
                conn,
                execution.thread_key,
                self._record_start(conn, execution, sandbox_id, receipt, ready=None),
            ),
        )
        return sandbox_id, offset, offset

    def _record_start(
        self,
        conn: sa.Connection,
        execution: ExecutionRecord,
        sandbox_id: str,
        receipt: InputReceipt | None,
        *,
        ready: ReadySandbox | None,
    ) -> list[NewEvent]:
        """Where the turn runs and where its output starts, under our lease; returns the
        events saying so."""
        values: dict[str, Any] = {"sandbox_id": sandbox_id}
        if receipt is not None:
            values.update(
                output_start_offset=receipt.offset,
                output_offset=receipt.offset,
                input_token=execution.execution_id,
            )
        renewal = execution_queries.lease_renewal(
            execution.execution_id,
            owner=self.owner,
            lease_seconds=self._settings.lease_seconds,
            **values,
        )
        if not conn.execute(renewal).rowcount:
            raise LeaseLost(execution.execution_id)
        new_events: list[NewEvent] = []
        if ready is not None:
            if ready.replaced is not None:
                new_events.append(
                    self._event(
                        execution,
                        "session.sandbox_replaced",
                        old_sandbox_id=ready.replaced,
                        sandbox_id=sandbox_id,
                    )
                )
            if ready.source == "resumed":
                new_events.append(
                    self._event(execution, "session.sandbox_resumed", sandbox_id=sandbox_id)
                )
            new_events.append(
                self._event(
                    execution,
                    "session.sandbox_ready",
                    sandbox_id=sandbox_id,
                    source=ready.source,
                    duration_ms=ready.duration_ms,
                    isolation=self._allocator.isolation,
                )
            )
        if receipt is not None:
            new_events.append(
                self._event(
                    execution,
                    "session.input_flushed",
                    line_count=len(execution.request.get("input_lines") or []),
                )
            )
        return new_events

    async def _finish(
        self,
        tx: LogTransaction,
        execution: ExecutionRecord,
        outcome: TurnOutcome,
        tracker: TurnTracker,
    ) -> None:
        outcome = self._forced_outcomes.get(execution.execution_id, outcome)
        redact = self._log.redactor.redact
        outcome = dataclasses.replace(
            outcome,
            result_text=None if outcome.result_text is None else redact(outcome.result_text),
            error=None if outcome.error is None else redact(outcome.error),
        )
        finished = await execution_queries.finish(
            tx.conn,
            execution.execution_id,
            status=outcome.status,
            owner=self.owner,
            error=outcome.error,
            reason=outcome.reason,
            completion_reason=outcome.completion_reason,
            result_text=outcome.result_text,
        )
        if not finished:
            raise LeaseLost(execution.execution_id)
        self._log.metrics.executions_finished.labels(outcome.status).inc()
        fields: dict[str, Any] = {}
        if outcome.status == "completed":
            fields = {"completion_reason": outcome.completion_reason}
            if outcome.result_text is not None:
                fields["result_text"] = outcome.result_text
        elif outcome.status == "failed":
            fields = {"error": outcome.error, "reason": outcome.reason}
        else:
            fields = {"reason": outcome.reason}
        tx.append(
            execution.thread_key, TERMINAL_EVENT[outcome.status], execution.execution_id, **fields
        )
        session_values: dict[str, Any] = {
            "status": "failed" if outcome.status == "failed" else "idle",
            "last_active_at": utcnow(),
        }
        if tracker.harness_thread_id is not None:
            session_values["harness_thread_id"] = tracker.harness_thread_id
        await session_queries.update_session(tx.conn, execution.thread_key, **session_values)
        if outcome.result_text:
            await message_queries.insert_message(
                tx.conn,
                execution.thread_key,
                client_message_id=f"result:{execution.execution_id}",
                role="assistant",
                parts=[{"type": "text", "text": outcome.result_text}],
                metadata={"execution_id": execution.execution_id},
            )
        await sandbox_queries.touch_session_sandbox(
            tx.conn,
            execution.thread_key,
            idle_pause_at=utcnow() + timedelta(milliseconds=self._idle_timeout_ms(execution)),
        )

    # -- helpers ----------------------------------------------------------------------------

    async def _heartbeat(self, execution_id: str) -> None:
        """Renews the lease; returns only when the lease is no longer ours."""
        while True:
            await asyncio.sleep(self._settings.lease_renew_seconds)
            async with self._log.write() as tx:
                if not await execution_queries.renew_lease(
                    tx.conn,
                    execution_id,
                    owner=self.owner,
                    lease_seconds=self._settings.lease_seconds,
                ):
                    return

    async def _require_lease(self, tx: LogTransaction, execution_id: str, **values: Any) -> None:
        if not await execution_queries.renew_lease(
            tx.conn,
            execution_id,
            owner=self.owner,
            lease_seconds=self._settings.lease_seconds,
            **values,
        ):
            raise LeaseLost(execution_id)

    async def _release_lease(self, execution_id: str) -> None:
        try:
            async with self._log.write() as tx:
                await execution_queries.release_lease(tx.conn, execution_id, owner=self.owner)
        except Exception:
            logger.warning("could not release lease", extra={"execution_id": execution_id})

    async def _interrupt_quietly(self, execution: ExecutionRecord, reason: str) -> None:
        current = await self._execution(execution.execution_id)
        sandbox_id = current.sandbox_id
        if sandbox_id is None:
            sandbox_id = (await self._session(execution.thread_key)).sandbox_id
        if sandbox_id is not None:
            await self._send_interrupt(sandbox_id, execution.execution_id, reason)

    def _deliver(
        self,
        execution: ExecutionRecord,
        session: SessionRecord,
        sandbox_id: str,
        *,
        fresh_sandbox: bool,
        after: EarlySandbox | None = None,
    ) -> asyncio.Future[InputReceipt]:
        """Write the execution's input (with its turn context) to a sandbox, in the background;
        to one still being created once it serves (`after`)."""

        async def deliver() -> InputReceipt:
            lines = await self._context.lines_for(
                list(execution.request.get("input_lines") or []),
                session,
                execution,
                fresh_sandbox=fresh_sandbox,
            )
            if after is not None:
                await after.wait_serving()
            return await self._backend.write_input(sandbox_id, lines, token=execution.execution_id)

        return asyncio.ensure_future(deliver())

    def _read_ahead(self, execution_id: str, sandbox_id: str, offset: int) -> OutputReadAhead:
        lines = self._backend.open_output(
            sandbox_id, offset, line_cap=self._settings.output_line_cap_bytes
        )
        return OutputReadAhead(lines, name=f"pump-reader:{execution_id}")

    async def _send_interrupt(self, sandbox_id: str, execution_id: str, reason: str) -> None:
        line = json.dumps({"type": "interrupt", "reason": reason})
        # One interrupt per execution is enough: the token makes repeats no-ops.
        with contextlib.suppress(SandboxError):
            await self._backend.write_input(sandbox_id, [line], token=f"{execution_id}-interrupt")

    async def _session(self, thread_key: str) -> SessionRecord:
        async with self._log.store.read() as conn:
            session = await session_queries.get_session(conn, thread_key)
        if session is None:
            raise SandboxError(f"session {thread_key} disappeared")
        return session

    async def _session_of(self, execution_id: str) -> SessionRecord | None:
        """The session of a queued execution, read without waiting for the writer."""
        async with self._log.store.read() as conn:
            return await session_queries.session_of_execution(conn, execution_id)

    async def _execution(self, execution_id: str) -> ExecutionRecord:
        async with self._log.store.read() as conn:
            execution = await execution_queries.get_execution(conn, execution_id)
        assert execution is not None
        return execution

    def _max_duration_ms(self, execution: ExecutionRecord) -> int:
        return int(execution.request.get("max_duration_ms") or self._settings.max_duration_ms)

    def _idle_timeout_ms(self, execution: ExecutionRecord) -> int:
        return int(execution.request.get("idle_timeout_ms") or self._settings.idle_pause_ms)
