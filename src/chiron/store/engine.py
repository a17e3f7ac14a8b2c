"""Engines, connections and transactions; the one place SQLite and PostgreSQL differ in setup.

SQLite: WAL, foreign keys and a busy timeout on every connection. Writers are serialised
through one lock and open with `BEGIN IMMEDIATE`, so two writers never deadlock upgrading a
read lock; readers use their own pool and never wait for a writer. Besides the async writer
connection, SQLite has a writer thread with its own connection that runs a whole synchronous
transaction per call (`run_write`): the async driver hops to its thread and back for every
statement, and on a busy event loop each hop waits behind other work. PostgreSQL: one pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

T = TypeVar("T")


class Store:
    """Owns the engines of one database; hands out read and write transactions."""

    _thread_writer: sa.Engine | None = None
    _writer_thread: ThreadPoolExecutor | None = None

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            problem = sqlite_json_problem()
            if problem is not None:
                raise RuntimeError(problem)
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._writer = create_async_engine(url, pool_size=1, max_overflow=0)
            self._reader = create_async_engine(url, pool_size=pool_size, max_overflow=0)
            _tune_sqlite(self._writer.sync_engine, writer=True)
            _tune_sqlite(self._reader.sync_engine, writer=False)
            if database and database != ":memory:":
                self._thread_writer = sa.create_engine(
                    parsed.set(drivername="sqlite"), pool_size=1, max_overflow=0
                )
                _tune_sqlite(self._thread_writer, writer=True)
                self._writer_thread = ThreadPoolExecutor(
                    1, thread_name_prefix="chiron-sqlite-writer"
                )
        elif self.dialect == "postgresql":
            # No pre-ping: it costs a round trip per checkout on the event path; recycling
            # and asyncpg's own error on a dead connection cover restarts.
            self._writer = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
            )
            self._reader = self._writer
        else:
            raise ValueError(f"unsupported database dialect {self.dialect!r}")
        # One in-process writer at a time on SQLite: the pool would serialise anyway, but the
        # lock makes the wait explicit and fair.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block exits without an exception."""
        if self._write_lock is None:
            async with self._writer.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._writer.begin() as conn:
            yield conn

    async def run_write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run the synchronous `work` in one write transaction, committed when it returns.

        On SQLite it runs on the writer thread in a single hop, serialised with `write()` by
        the same lock. A cancelled caller gets CancelledError only once the transaction ended
        (however many times it is cancelled meanwhile), with the lock held until then, and the
        transaction may have committed. On PostgreSQL it runs through the async connection,
        and a cancel rolls it back.
        """
        if self._writer_thread is None:
            async with self.write() as conn:
                return await conn.run_sync(work)
        assert self._write_lock is not None
        async with self._write_lock:
            done = asyncio.get_running_loop().run_in_executor(
                self._writer_thread, self._transaction_in_thread, work
            )
            try:
                return await asyncio.shield(done)
            finally:
                while not done.done():
                    # Already leaving with CancelledError: further cancels only wait more.
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([done])

    def _transaction_in_thread(self, work: Callable[[sa.Connection], T]) -> T:
        assert self._thread_writer is not None
        with self._thread_writer.begin() as conn:
            return work(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A short read transaction; hold it only for the queries, never while waiting."""
        async with self._reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
        if self._writer_thread is not None and self._thread_writer is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._writer_thread, self._thread_writer.dispose
            )
            self._writer_thread.shutdown()


def sqlite_json_problem() -> str | None:
    """Why this Python's SQLite cannot hold the event log, or None: output batches are
    inserted through `json_each`, part of SQLite since 3.38 and of most older builds."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as conn:
            conn.execute("SELECT count(*) FROM json_each('[1]')").fetchone()
    except sqlite3.OperationalError as exc:
        return (
            f"this Python's SQLite {sqlite3.sqlite_version} lacks the JSON functions "
            f"(JSON1) Chiron needs ({exc}); use SQLite 3.38 or newer, or PostgreSQL"
        )
    return None


def _tune_sqlite(engine: sa.Engine, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    if not writer:
        # Readers run in autocommit: each statement sees what was committed when it started,
        # as under PostgreSQL's READ COMMITTED, which every query is written (and tested) for.
        # An explicit BEGIN would cost a round trip to the driver's thread per read.
        return

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
