"""Cross-process wake-ups: PostgreSQL NOTIFY reaches readers, also after the LISTEN link drops."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa

from chiron.store.engine import Store
from chiron.store.event_queries import append_events
from chiron.store.notifier import EventNotifier, PostgresListener
from chiron.store.records import NewEvent
from tests.conftest import PG_ADMIN_DSN
from tests.store_rows import insert_shell_session


async def _write_as_other_process(store: Store, thread_key: str) -> None:
    async with store.write() as conn:
        await append_events(conn, thread_key, [NewEvent("x", "{}")], origin="another-process")


# LISTEN/NOTIFY is PostgreSQL's; on SQLite readers are woken in-process (tests/api).
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@postgresql_only
async def test_notify_from_another_writer_wakes_readers_and_survives_reconnect(
    store: Store,
) -> None:
    async with store.write() as conn:
        await insert_shell_session(conn, "t:n")
    notifier = EventNotifier()
    listener = PostgresListener(store.url, notifier)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        waiting = asyncio.create_task(notifier.wait("t:n", timeout=5))
        await asyncio.sleep(0)
        await _write_as_other_process(store, "t:n")
        assert await waiting is True
        assert notifier.remote_generation("t:n") == 1

        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'chiron-listen' AND datname = $1",
                sa.engine.make_url(store.url).database,
            )
        finally:
            await admin.close()
        async with asyncio.timeout(15):
            while listener.connections < 2 or not listener.connected.is_set():
                await asyncio.sleep(0.02)
        waiting = asyncio.create_task(notifier.wait("t:n", timeout=5))
        await asyncio.sleep(0)
        await _write_as_other_process(store, "t:n")
        assert await waiting is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@postgresql_only
async def test_own_notifications_are_not_counted_as_remote(store: Store) -> None:
    notifier = EventNotifier()
    listener = PostgresListener(store.url, notifier)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        async with store.write() as conn:
            await insert_shell_session(conn, "t:o")
            await append_events(conn, "t:o", [NewEvent("x", "{}")], origin=notifier.origin)
        await asyncio.sleep(0.3)
        assert notifier.remote_generation("t:o") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
