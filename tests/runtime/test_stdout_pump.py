"""The stdout pump on a real database: every line stored once and in order while one batch is
stored as the next is prepared, a lost lease noticed without waiting for more output, and
text the database could not hold made storable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from itertools import cycle

import pytest

from chiron.redaction import Redactor
from chiron.runtime.errors import LeaseLost
from chiron.runtime.event_log import OUTPUT_LINE, EventLog, LogTransaction
from chiron.runtime.metrics import Metrics
from chiron.runtime.stdout_pump import BATCH_LINES, OutputReadAhead, PumpContext, StdoutPump
from chiron.runtime.terminal import TurnOutcome, TurnTracker
from chiron.sandbox.backend import OutputLine
from chiron.store import execution_queries
from chiron.store.engine import Store
from chiron.store.event_queries import events_after
from chiron.store.notifier import EventNotifier
from chiron.store.types import utcnow
from tests.store_rows import insert_shell_session

THREAD = "pump:test"
EXECUTION = "exe_pump"
OWNER = "replica-a"
TURN_COMPLETED = b'{"method":"turn/completed","params":{"turn":{"status":"completed"}}}'


async def _running_execution(store: Store) -> PumpContext:
    async with store.write() as conn:
        await insert_shell_session(conn, THREAD)
        await execution_queries.insert_queued(
            conn, execution_id=EXECUTION, thread_key=THREAD, idempotency_key=None, request={}
        )
        claimed = await execution_queries.claim(conn, EXECUTION, owner=OWNER, lease_seconds=60)
    assert claimed is not None
    return PumpContext(
        thread_key=THREAD,
        execution_id=EXECUTION,
        owner=OWNER,
        lease_seconds=60,
        started_at=utcnow(),
        first_output_seen=False,
        stored_offset=0,
    )


def _lines(payloads: list[bytes]) -> list[OutputLine]:
    lines, offset = [], 0
    for data in payloads:
        offset += len(data) + 1
        lines.append(OutputLine(data, offset, None))
    return lines


async def _feed(
    lines: list[OutputLine], then: asyncio.Event | None = None
) -> AsyncIterator[list[OutputLine]]:
    """`lines` in chunks of uneven sizes, as reads of a log would make them."""
    start = 0
    for size in cycle((1, 7, 300, 4096)):
        if start >= len(lines):
            break
        yield lines[start : start + size]
        start += size
    if then is not None:
        await then.wait()  # the harness goes quiet without ending its output


async def _pump(
    store: Store, ctx: PumpContext, lines: AsyncIterator[OutputLine]
) -> TurnOutcome | None:
    event_log = EventLog(store, EventNotifier(), Redactor(), Metrics())

    async def finisher(tx: LogTransaction, outcome: TurnOutcome) -> None:
        tx.append(THREAD, "session.execution_completed", EXECUTION)
        await execution_queries.finish(tx.conn, EXECUTION, status=outcome.status, owner=OWNER)

    output = OutputReadAhead(lines, name="test-pump-reader")
    return await StdoutPump(event_log, event_log.redactor).run(ctx, output, TurnTracker(), finisher)


async def test_a_flood_is_stored_once_in_order_with_the_turn_finished_last(store: Store) -> None:
    ctx = await _running_execution(store)
    count = 5 * BATCH_LINES + 17
    lines = _lines([f"line {n}".encode() for n in range(count)] + [TURN_COMPLETED])
    outcome = await _pump(store, ctx, _feed(lines))
    assert outcome is not None and outcome.status == "completed"
    async with store.read() as conn:
        events = await events_after(conn, THREAD, 0, limit=count + 10)
        execution = await execution_queries.get_execution(conn, EXECUTION)
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert events[0].event_type == "session.first_token"
    outputs = [e.payload for e in events if e.event_type == OUTPUT_LINE]
    assert outputs == [f"line {n}" for n in range(count)] + [TURN_COMPLETED.decode()]
    assert events[-1].event_type == "session.execution_completed"
    assert execution is not None and execution.status == "completed"
    assert execution.output_offset == lines[-1].end_offset


async def test_a_lease_taken_over_ends_the_pump_while_the_harness_is_quiet(store: Store) -> None:
    ctx = await _running_execution(store)
    async with store.write() as conn:
        assert await execution_queries.take_over_lease(
            conn, EXECUTION, owner="replica-b", lease_seconds=60, dead_owners=[OWNER]
        )
    never = asyncio.Event()
    lines = _lines([f"line {n}".encode() for n in range(3 * BATCH_LINES)])
    # Without noticing, the pump would wait for output forever: the guard only ends a hang.
    async with asyncio.timeout(60):
        with pytest.raises(LeaseLost):
            await _pump(store, ctx, _feed(lines, then=never))
    async with store.read() as conn:
        assert await events_after(conn, THREAD, 0) == []
        execution = await execution_queries.get_execution(conn, EXECUTION)
    assert execution is not None and execution.lease_owner == "replica-b"
    assert execution.output_offset is None


async def test_nul_and_invalid_utf8_in_output_are_stored_as_replacement_characters(
    store: Store,
) -> None:
    """PostgreSQL text cannot hold NUL: both engines store U+FFFD in its place."""
    ctx = await _running_execution(store)
    lines = _lines(
        [b"a\x00b", b"bad \xff byte", json.dumps({"x": "\x00"}).encode(), TURN_COMPLETED]
    )
    await _pump(store, ctx, _feed(lines))
    async with store.read() as conn:
        events = await events_after(conn, THREAD, 0)
    outputs = [e.payload for e in events if e.event_type == OUTPUT_LINE]
    assert outputs[:3] == ["a\ufffdb", "bad \ufffd byte", '{"x": "\\u0000"}']
