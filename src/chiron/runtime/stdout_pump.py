"""Moves a sandbox's recorded stdout into the event log, exactly once, in order.

A reader task fills a queue from the sandbox's output log; the pump takes whatever is queued
(one line when output trickles, up to a batch when it floods) and appends it in one
transaction that also advances the execution's stored output offset and renews its lease.
The offset and the events commit together, so whoever resumes the execution later — this
process or another after a crash — continues exactly after the last stored line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

import sqlalchemy as sa

from chiron.redaction import Redactor
from chiron.runtime.errors import LeaseLost
from chiron.runtime.event_log import OUTPUT_LINE, EventLog, LogTransaction, event_payload
from chiron.runtime.terminal import TurnOutcome, TurnTracker
from chiron.sandbox.backend import OutputLine
from chiron.store import execution_queries
from chiron.store.event_queries import EventBatch, append_events_sync
from chiron.store.records import EventRecord, NewEvent
from chiron.store.types import utcnow

BATCH_LINES = 5000
# One batch is one transaction; its size in bytes is bounded too (lines may be up to the 1 MiB
# cap each), as is what is read ahead of the pump.
BATCH_BYTES = 8 << 20
_QUEUE_LINES = 20000
_QUEUE_BYTES = 32 << 20
_DATA = itemgetter(0)  # OutputLine.data, for sums that stay in C


@dataclass
class PumpContext:
    thread_key: str
    execution_id: str
    owner: str
    lease_seconds: float
    started_at: datetime
    first_output_seen: bool
    # Lines ending at or before this offset are already stored: observe them, store nothing.
    stored_offset: int


Finisher = Callable[[LogTransaction, TurnOutcome], Awaitable[None]]


class StdoutPump:
    def __init__(self, event_log: EventLog, redactor: Redactor) -> None:
        self._log = event_log
        self._redactor = redactor

    async def run(
        self,
        ctx: PumpContext,
        output: OutputReadAhead,
        tracker: TurnTracker,
        finisher: Finisher,
    ) -> TurnOutcome | None:
        """Pump until a terminal line, finishing the execution in the transaction storing it.

        Returns None when the output ended (orderly EOF) without a terminal line; raises
        SandboxLost if the sandbox vanished and LeaseLost if another process took over.
        Closes `output` in any case.
        """
        # The store of one batch runs while the next is taken and prepared, so the database's
        # thread and this loop work in parallel during a flood. Stores stay one at a time, in
        # order; one still running is awaited before waiting for more output, so a failure
        # (LeaseLost) never waits for the harness to print again.
        storing: asyncio.Task[None] | None = None
        try:
            while True:
                if storing is not None and not output.has_lines():
                    await storing
                    storing = None
                batch, ended = await output.take(BATCH_LINES, BATCH_BYTES)
                outcome: TurnOutcome | None = None
                for index, line in enumerate(batch):
                    outcome = tracker.observe(line.data)
                    if outcome is not None:
                        batch = batch[: index + 1]
                        break
                fresh = batch
                if batch and batch[0].end_offset <= ctx.stored_offset:
                    # Re-attached: lines up to the stored offset are in the log already.
                    fresh = [line for line in batch if line.end_offset > ctx.stored_offset]
                if outcome is not None:
                    if len(fresh) > 1:
                        # Readers see the turn's output before the finishing writes are done.
                        prepared = self._prepare(ctx, fresh[:-1])
                        fresh = fresh[-1:]
                    else:
                        prepared = None
                    if storing is not None:
                        await storing
                        storing = None
                    if prepared is not None:
                        await self._store(ctx, prepared, None, finisher)
                    await self._store(ctx, self._prepare(ctx, fresh), outcome, finisher)
                    return outcome
                if fresh:
                    prepared = self._prepare(ctx, fresh)
                    if storing is not None:
                        await storing
                    storing = asyncio.create_task(self._store(ctx, prepared, None, finisher))
                if ended:
                    if storing is not None:
                        await storing
                        storing = None
                    error = output.error()
                    if error is not None:
                        raise error
                    return None
        finally:
            try:
                if storing is not None:
                    storing.cancel()
                    # Waits without taking on the store's own error; a cancel of the pump
                    # itself still propagates.
                    await asyncio.wait([storing])
                    if not storing.cancelled():
                        storing.exception()
            finally:
                await output.close()

    def _texts(self, batch: list[OutputLine]) -> list[str]:
        """The batch's lines as redacted text, decoded and scanned in one go.

        Lines hold no newline and an invalid UTF-8 sequence never spans one, so decoding the
        joined bytes gives exactly the per-line decodings. A NUL becomes U+FFFD like any other
        byte the text cannot carry: PostgreSQL text cannot hold it, and both engines keep the
        same log.
        """
        joined = b"\n".join(line.data for line in batch).decode("utf-8", errors="replace")
        if "\x00" in joined:
            joined = joined.replace("\x00", "\ufffd")
        return self._redactor.redact_lines(joined.split("\n"))

    def _prepare(self, ctx: PumpContext, batch: list[OutputLine]) -> _PreparedBatch:
        new_events: list[NewEvent] = []
        first_output = bool(batch) and not ctx.first_output_seen
        if first_output:
            ctx.first_output_seen = True
            latency_ms = int((utcnow() - ctx.started_at).total_seconds() * 1000)
            new_events.append(
                NewEvent(
                    "session.first_token",
                    event_payload(
                        self._redactor, ctx.thread_key, ctx.execution_id, latency_ms=latency_ms
                    ),
                    ctx.execution_id,
                )
            )
        truncations: list[tuple[int, OutputLine]] = []
        if batch:
            first = len(new_events)
            execution_id = ctx.execution_id
            new_events += map(
                NewEvent._make, zip(repeat(OUTPUT_LINE), self._texts(batch), repeat(execution_id))
            )
            truncations = [
                (first + index, line)
                for index, line in enumerate(batch)
                if line.original_bytes is not None
            ]
        return _PreparedBatch(
            batch, EventBatch(self._log.store.dialect, new_events), truncations, first_output
        )

    async def _store(
        self,
        ctx: PumpContext,
        prepared: _PreparedBatch,
        outcome: TurnOutcome | None,
        finisher: Finisher,
    ) -> None:
        """One transaction: renew the lease, advance the stored offset, append the events."""
        renewal = self._lease_renewal(ctx, prepared)
        origin = self._log.notifier.origin

        def write(conn: sa.Connection) -> list[EventRecord]:
            if not conn.execute(renewal).rowcount:
                raise LeaseLost(ctx.execution_id)
            stored = append_events_sync(conn, ctx.thread_key, prepared.events, origin=origin)
            notes = self._truncation_events(ctx, prepared, stored)
            return stored + append_events_sync(conn, ctx.thread_key, notes, origin=origin)

        if outcome is None:
            await self._log.write_sync(ctx.thread_key, write)
        else:
            async with self._log.write() as tx:
                await tx.run_sync(ctx.thread_key, write)
                await finisher(tx, outcome)
        if prepared.lines:
            ctx.stored_offset = prepared.lines[-1].end_offset

    @staticmethod
    def _lease_renewal(ctx: PumpContext, prepared: _PreparedBatch) -> sa.Update:
        extra: dict[str, object] = {}
        if prepared.lines:
            extra["output_offset"] = prepared.lines[-1].end_offset
            if prepared.first_output:
                extra["first_output_at"] = utcnow()
        return execution_queries.lease_renewal(
            ctx.execution_id, owner=ctx.owner, lease_seconds=ctx.lease_seconds, **extra
        )

    def _truncation_events(
        self, ctx: PumpContext, prepared: _PreparedBatch, stored: list[EventRecord]
    ) -> list[NewEvent]:
        return [
            NewEvent(
                "session.output.truncated",
                event_payload(
                    self._redactor,
                    ctx.thread_key,
                    ctx.execution_id,
                    original_bytes=line.original_bytes,
                    kept_bytes=len(line.data),
                    line_event_id=stored[index].event_id,
                ),
                ctx.execution_id,
            )
            for index, line in prepared.truncations
        ]


class _PreparedBatch(NamedTuple):
    """Output lines made into events, ready for one store transaction."""

    lines: list[OutputLine]
    events: EventBatch
    truncations: list[tuple[int, OutputLine]]  # (index in events, the truncated line)
    first_output: bool


class OutputReadAhead:
    """A sandbox's output lines, read ahead of the pump into a deque (cheaper per line than a
    Queue) from the moment this is made.

    Made as soon as the output's start offset is known, it connects and reads while the turn's
    start is still being committed; during a turn it keeps filling while the pump waits on the
    database, which is what turns a flood of output into large batches.
    """

    def __init__(self, chunks: AsyncIterator[list[OutputLine]], *, name: str) -> None:
        self._lines: deque[OutputLine] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._ended = False
        self._reader = asyncio.create_task(self.fill(chunks), name=name)

    async def fill(self, chunks: AsyncIterator[list[OutputLine]]) -> None:
        try:
            async for lines in chunks:
                self._lines.extend(lines)
                self._bytes += sum(map(len, map(_DATA, lines)))
                self._ready.set()
                if len(self._lines) >= _QUEUE_LINES or self._bytes >= _QUEUE_BYTES:
                    self._room.clear()
                    await self._room.wait()
        finally:
            self._ended = True
            self._ready.set()

    async def take(self, max_lines: int, max_bytes: int) -> tuple[list[OutputLine], bool]:
        """Lines once any are there, up to `max_lines` and (past the first) `max_bytes`; True
        as second item when input ended."""
        while not self._lines and not self._ended:
            self._ready.clear()
            await self._ready.wait()
        lines = self._lines
        if self._bytes <= max_bytes:
            # Everything queued fits the byte bound: no need to weigh line by line.
            take = lines.popleft
            batch = [take() for _ in repeat(None, min(len(lines), max_lines))]
        else:
            batch = []
            size = 0
            while lines and len(batch) < max_lines:
                size += len(lines[0].data)
                if batch and size > max_bytes:
                    break
                batch.append(lines.popleft())
        self._bytes -= sum(map(len, map(_DATA, batch)))
        self._room.set()
        return batch, self._ended and not self._lines

    def has_lines(self) -> bool:
        return bool(self._lines)

    def error(self) -> BaseException | None:
        """Why reading stopped, once it has (None for an orderly end)."""
        if not self._reader.done() or self._reader.cancelled():
            return None
        return self._reader.exception()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
