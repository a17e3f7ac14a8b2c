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
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from chiron.redaction import Redactor
from chiron.runtime.errors import LeaseLost
from chiron.runtime.event_log import OUTPUT_LINE, EventLog, LogTransaction
from chiron.runtime.terminal import TurnOutcome, TurnTracker
from chiron.sandbox.backend import OutputLine
from chiron.store import execution_queries
from chiron.store.records import NewEvent
from chiron.store.types import utcnow

BATCH_LINES = 2000
# One batch is one transaction; its size in bytes is bounded too (lines may be up to the 1 MiB
# cap each), as is what is read ahead of the pump.
BATCH_BYTES = 8 << 20
_QUEUE_LINES = 8000
_QUEUE_BYTES = 32 << 20


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
        try:
            while True:
                batch, ended = await output.take(BATCH_LINES, BATCH_BYTES)
                outcome: TurnOutcome | None = None
                for index, line in enumerate(batch):
                    outcome = tracker.observe(line.data)
                    if outcome is not None:
                        batch = batch[: index + 1]
                        break
                fresh = [line for line in batch if line.end_offset > ctx.stored_offset]
                if outcome is not None and len(fresh) > 1:
                    # Readers see the turn's output before the finishing writes are done.
                    await self._store(ctx, fresh[:-1], None, finisher)
                    fresh = fresh[-1:]
                if fresh or outcome is not None:
                    await self._store(ctx, fresh, outcome, finisher)
                if outcome is not None:
                    return outcome
                if ended:
                    error = output.error()
                    if error is not None:
                        raise error
                    return None
        finally:
            await output.close()

    def _texts(self, batch: list[OutputLine]) -> list[str]:
        """The batch's lines as redacted text, decoded and scanned in one go.

        Lines hold no newline and an invalid UTF-8 sequence never spans one, so decoding the
        joined bytes gives exactly the per-line decodings.
        """
        joined = b"\n".join(line.data for line in batch).decode("utf-8", errors="replace")
        return self._redactor.redact_lines(joined.split("\n"))

    async def _store(
        self,
        ctx: PumpContext,
        batch: list[OutputLine],
        outcome: TurnOutcome | None,
        finisher: Finisher,
    ) -> None:
        new_events: list[NewEvent] = []
        truncations: list[tuple[int, OutputLine]] = []
        if batch and not ctx.first_output_seen:
            latency_ms = int((utcnow() - ctx.started_at).total_seconds() * 1000)
            new_events.append(
                NewEvent(
                    "session.first_token",
                    _json_payload(ctx, latency_ms=latency_ms),
                    ctx.execution_id,
                )
            )
        if batch:
            first = len(new_events)
            execution_id = ctx.execution_id
            new_events += [NewEvent(OUTPUT_LINE, text, execution_id) for text in self._texts(batch)]
            truncations = [
                (first + index, line)
                for index, line in enumerate(batch)
                if line.original_bytes is not None
            ]
        async with self._log.write() as tx:
            extra: dict[str, object] = {}
            if batch:
                extra["output_offset"] = batch[-1].end_offset
                if not ctx.first_output_seen:
                    extra["first_output_at"] = utcnow()
            if not await execution_queries.renew_lease(
                tx.conn,
                ctx.execution_id,
                owner=ctx.owner,
                lease_seconds=ctx.lease_seconds,
                **extra,
            ):
                raise LeaseLost(ctx.execution_id)
            stored = await tx.append_raw(ctx.thread_key, new_events)
            for index, line in truncations:
                tx.append(
                    ctx.thread_key,
                    "session.output.truncated",
                    ctx.execution_id,
                    original_bytes=line.original_bytes,
                    kept_bytes=len(line.data),
                    line_event_id=stored[index].event_id,
                )
            if outcome is not None:
                await finisher(tx, outcome)
        if batch:
            ctx.first_output_seen = True
            ctx.stored_offset = batch[-1].end_offset


class OutputReadAhead:
    """A sandbox's output lines, read ahead of the pump into a deque (cheaper per line than a
    Queue) from the moment this is made.

    Made as soon as the output's start offset is known, it connects and reads while the turn's
    start is still being committed; during a turn it keeps filling while the pump waits on the
    database, which is what turns a flood of output into large batches.
    """

    def __init__(self, lines: AsyncIterator[OutputLine], *, name: str) -> None:
        self._lines: deque[OutputLine] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._ended = False
        self._reader = asyncio.create_task(self.fill(lines), name=name)

    async def fill(self, lines: AsyncIterator[OutputLine]) -> None:
        try:
            async for line in lines:
                self._lines.append(line)
                self._bytes += len(line.data)
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
        batch: list[OutputLine] = []
        size = 0
        lines = self._lines
        while lines and len(batch) < max_lines:
            size += len(lines[0].data)
            if batch and size > max_bytes:
                break
            batch.append(lines.popleft())
        self._bytes -= sum(len(line.data) for line in batch)
        self._room.set()
        return batch, self._ended and not self._lines

    def error(self) -> BaseException | None:
        """Why reading stopped, once it has (None for an orderly end)."""
        if not self._reader.done() or self._reader.cancelled():
            return None
        return self._reader.exception()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def _json_payload(ctx: PumpContext, **fields: object) -> str:
    return json.dumps(
        {"thread_key": ctx.thread_key, "execution_id": ctx.execution_id, **fields},
        separators=(",", ":"),
    )
