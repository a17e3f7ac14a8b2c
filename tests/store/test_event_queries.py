"""The event log's ids are per session, gap-free and in commit order, on both engines."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from chiron.store.engine import Store
from chiron.store.event_queries import (
    SessionMissing,
    append_events,
    append_events_sync,
    events_after,
)
from chiron.store.records import NewEvent
from tests.store_rows import insert_shell_session


async def _session(store: Store, thread_key: str) -> None:
    async with store.write() as conn:
        await insert_shell_session(conn, thread_key)


async def test_ids_are_per_session_and_gap_free_under_concurrent_writers(store: Store) -> None:
    await _session(store, "t:a")
    await _session(store, "t:b")

    async def writer(thread_key: str, n: int) -> None:
        for i in range(n):
            async with store.write() as conn:
                await append_events(
                    conn, thread_key, [NewEvent("x", f'{{"i":{i}}}'), NewEvent("y", "{}")]
                )

    await asyncio.gather(*(writer(k, 15) for k in ("t:a", "t:b", "t:a", "t:b")))
    async with store.read() as conn:
        for thread_key in ("t:a", "t:b"):
            ids = [e.event_id for e in await events_after(conn, thread_key, 0)]
            assert ids == list(range(1, 61))


async def test_rolled_back_append_leaves_no_gap(store: Store) -> None:
    await _session(store, "t:r")
    with pytest.raises(RuntimeError):
        async with store.write() as conn:
            await append_events(conn, "t:r", [NewEvent("x", "{}")])
            raise RuntimeError("abort")
    async with store.write() as conn:
        (record,) = await append_events(conn, "t:r", [NewEvent("x", "{}")])
    assert record.event_id == 1


async def test_append_to_missing_session_fails_and_stores_nothing(store: Store) -> None:
    with pytest.raises(SessionMissing):
        async with store.write() as conn:
            await append_events(conn, "t:none", [NewEvent("x", "{}")])
    async with store.read() as conn:
        assert await events_after(conn, "t:none", 0) == []


async def test_events_after_pages_and_filters_by_execution(store: Store) -> None:
    await _session(store, "t:p")
    async with store.write() as conn:
        await append_events(
            conn,
            "t:p",
            [NewEvent("x", "{}", "exe_1" if i % 2 else "exe_2") for i in range(10)],
        )
    async with store.read() as conn:
        page = await events_after(conn, "t:p", 3, limit=4)
        assert [e.event_id for e in page] == [4, 5, 6, 7]
        only = await events_after(conn, "t:p", 0, execution_id="exe_1")
        assert [e.event_id for e in only] == [2, 4, 6, 8, 10]


# Text an output line may carry: JSON with escapes, quotes and backslashes, non-ASCII from
# several planes, control characters, a literal "\u0000" written out in ASCII, empty text.
AWKWARD_PAYLOADS = [
    '{"delta":"a\\nb\\t\\"c\\"\\\\"}',
    "naïve café — 日本語 😀 \U0010fffd",
    "tab\there\r\x07bell\x1b[31mred\x1b[0m",
    "written out: \\u0000 and \\\\ and \\",
    "",
    '[1, 2, {"not": "parsed"}]',
]


@pytest.mark.parametrize("uniform", [True, False], ids=["one-type", "mixed-types"])
async def test_payloads_are_stored_byte_for_byte(store: Store, uniform: bool) -> None:
    """A batch of one event type goes in as one set-based statement, a mixed one row by row;
    either way every payload reads back exactly as given, with the ids and types in order."""
    await _session(store, "t:text")
    new_events = [
        NewEvent("line" if uniform or i % 2 else "other", payload, "exe_1")
        for i, payload in enumerate(AWKWARD_PAYLOADS * 300)
    ]
    async with store.write() as conn:
        returned = await append_events(conn, "t:text", new_events)
    async with store.read() as conn:
        stored = await events_after(conn, "t:text", 0, limit=len(new_events))
    assert [(e.event_id, e.event_type, e.execution_id, e.payload) for e in stored] == [
        (i + 1, n.event_type, n.execution_id, n.payload) for i, n in enumerate(new_events)
    ]
    assert [(e.event_id, e.payload) for e in returned] == [(e.event_id, e.payload) for e in stored]
    assert len({e.created_at for e in stored}) == 1


async def test_nul_in_a_payload_is_kept_on_sqlite_and_refused_whole_on_postgresql(
    store: Store,
) -> None:
    """SQLite text holds NUL (even in a batch of one type, which takes another statement);
    PostgreSQL text cannot, and the batch fails as a whole. The pump never sends one."""
    await _session(store, "t:nul")
    payloads = ["before\x00after", "plain"]
    if store.is_postgresql:
        with pytest.raises(sa.exc.DBAPIError, match="0x00"):
            async with store.write() as conn:
                await append_events(conn, "t:nul", [NewEvent("line", p) for p in payloads])
        payloads = []
    else:
        async with store.write() as conn:
            await append_events(conn, "t:nul", [NewEvent("line", p) for p in payloads])
    async with store.read() as conn:
        assert [e.payload for e in await events_after(conn, "t:nul", 0)] == payloads


async def test_a_failing_synchronous_transaction_stores_nothing(store: Store) -> None:
    """`run_write`: SQLite's writer thread, or the async connection on PostgreSQL."""
    await _session(store, "t:sync")

    def fail_after_appending(conn: sa.Connection) -> None:
        append_events_sync(conn, "t:sync", [NewEvent("x", "lost")])
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        await store.run_write(fail_after_appending)
    records = await store.run_write(
        lambda conn: append_events_sync(conn, "t:sync", [NewEvent("x", "kept")])
    )
    assert [(r.event_id, r.payload) for r in records] == [(1, "kept")]
    async with store.read() as conn:
        assert [e.payload for e in await events_after(conn, "t:sync", 0)] == ["kept"]
