"""SQLite's writer thread (`Store.run_write`): whole transactions in one call, serialised with
the async writer.

The thread is SQLite's alone (on PostgreSQL `run_write` goes through the async connection), so
these tests make their own SQLite database; `run_write` itself is tested on both engines in
test_event_queries.py, the pump's use of it in tests/runtime/test_stdout_pump.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chiron.store.engine import Store
from chiron.store.event_queries import append_events, append_events_sync, events_after
from chiron.store.migrate import upgrade_to_head
from chiron.store.records import NewEvent
from tests.store_rows import insert_shell_session


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'chiron.db'}")
    await upgrade_to_head(store)
    async with store.write() as conn:
        await insert_shell_session(conn, "t:w")
    yield store
    await store.dispose()


async def _payloads(store: Store) -> list[str]:
    async with store.read() as conn:
        return [e.payload for e in await events_after(conn, "t:w", 0, limit=10_000)]


async def test_thread_and_async_writers_interleave_without_gaps(sqlite_store: Store) -> None:
    async def async_writer(n: int) -> None:
        for i in range(n):
            async with sqlite_store.write() as conn:
                await append_events(conn, "t:w", [NewEvent("a", f"a{i}"), NewEvent("b", "{}")])

    async def thread_writer(n: int) -> None:
        for i in range(n):
            await sqlite_store.run_write(
                lambda conn, i=i: append_events_sync(
                    conn, "t:w", [NewEvent("line", f"t{i}.{j}") for j in range(50)]
                )
            )

    await asyncio.gather(async_writer(20), thread_writer(20), async_writer(20), thread_writer(20))
    async with sqlite_store.read() as conn:
        stored = await events_after(conn, "t:w", 0, limit=10_000)
    assert [e.event_id for e in stored] == list(range(1, 2 * 20 * 2 + 2 * 20 * 50 + 1))
    # Each thread transaction's lines stayed together, in order.
    lines = [e.payload for e in stored if e.event_type == "line"]
    for start in range(0, len(lines), 50):
        prefix = lines[start].split(".")[0]
        assert lines[start : start + 50] == [f"{prefix}.{j}" for j in range(50)]


async def test_a_cancelled_caller_leaves_the_transaction_to_finish_under_the_lock(
    sqlite_store: Store,
) -> None:
    """The write lock stays held until the thread's transaction ended, so the next writer
    neither fails on SQLite's lock nor sees half of it."""
    inside = threading.Event()
    release = threading.Event()

    def slow(conn: sa.Connection) -> None:
        append_events_sync(conn, "t:w", [NewEvent("x", "from the thread")])
        inside.set()
        release.wait(10)

    task = asyncio.create_task(sqlite_store.run_write(slow))
    await asyncio.to_thread(inside.wait, 10)
    for _ in range(2):  # a second cancel (as at shutdown) must not let go of the lock either
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done(), "the caller returned while its transaction still held SQLite"

    async def next_writer() -> None:
        async with sqlite_store.write() as conn:
            await append_events(conn, "t:w", [NewEvent("x", "next")])

    following = asyncio.create_task(next_writer())
    await asyncio.sleep(0.05)
    assert not following.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await following
    assert await _payloads(sqlite_store) == ["from the thread", "next"]
