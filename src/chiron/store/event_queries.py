"""The event log: gap-free per-session ids allocated in the inserting transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import count, repeat
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import EventRecord, NewEvent
from chiron.store.tables import events, sessions
from chiron.store.types import utcnow

NOTIFY_CHANNEL = "chiron_events"
_INSERT_HEAD = (
    "INSERT INTO events (thread_key, event_id, execution_id, event_type, payload, created_at)"
)
# In EventRecord's field order, so rows convert positionally (replay reads many rows).
_EVENT_COLUMNS = (
    events.c.thread_key,
    events.c.event_id,
    events.c.execution_id,
    events.c.event_type,
    events.c.payload,
    events.c.created_at,
)


class SessionMissing(LookupError):
    """Events were appended to a thread key that has no session."""


class EventBatch:
    """Events to append, with the insert's payload parameter encoded ahead of the transaction.

    Events of one type and execution (a batch of output lines) go in as one statement whose
    rows the database expands from a single array parameter: no per-row work in Python, and
    on SQLite the whole insert is one sqlite3 call that releases the GIL. Encoding that
    parameter is the costly part, so a caller on the hot path (the stdout pump) builds the
    batch while the previous transaction still runs. Mixed events go to the driver as rows.
    """

    __slots__ = ("_dialect", "_uniform_payloads", "new_events")

    def __init__(self, dialect: str, new_events: Sequence[NewEvent]) -> None:
        self._dialect = dialect
        self.new_events = new_events
        self._uniform_payloads: object = None
        if len(set(map(_KIND, new_events))) != 1:
            return
        payloads = list(map(_PAYLOAD, new_events))
        if dialect == "postgresql":
            self._uniform_payloads = payloads
            return
        encoded = json.dumps(payloads)
        # json_each would end a text at a NUL (escaped as \u0000); row binding keeps it whole.
        if "\\u0000" not in encoded:
            self._uniform_payloads = encoded

    def __len__(self) -> int:
        return len(self.new_events)

    def records(self, thread_key: str, last_id: int | None) -> list[EventRecord]:
        """The records the batch becomes when the session's counter reached `last_id`."""
        if last_id is None:
            raise SessionMissing(thread_key)
        # Built by iteration that stays in C: at a flood's rate per-record calls add up.
        return list(
            map(
                EventRecord._make,
                zip(
                    repeat(thread_key),
                    count(last_id - len(self.new_events) + 1),
                    map(_EXECUTION_ID, self.new_events),
                    map(_EVENT_TYPE, self.new_events),
                    map(_PAYLOAD, self.new_events),
                    repeat(utcnow()),
                ),
            )
        )

    def insert(self, records: list[EventRecord]) -> tuple[str, Any]:
        """The statement and driver parameters inserting `records` (from `self.records`)."""
        dialect, first = self._dialect, records[0]
        created = _created_at(dialect, first.created_at)
        if self._uniform_payloads is not None:
            head = (first.thread_key, first.event_id, first.execution_id, first.event_type)
            return _INSERT_UNIFORM[dialect], (*head, created, self._uniform_payloads)
        if dialect == "sqlite":
            return _INSERT_ROWS[dialect], [(*record[:5], created) for record in records]
        return _INSERT_ROWS[dialect], records  # in column order: asyncpg takes them as they are


async def append_events(
    conn: AsyncConnection,
    thread_key: str,
    new_events: Sequence[NewEvent] | EventBatch,
    *,
    origin: str = "",
) -> list[EventRecord]:
    """`append_events_sync` on an async connection."""
    if not new_events:
        return []
    return await conn.run_sync(append_events_sync, thread_key, new_events, origin=origin)


def append_events_sync(
    conn: sa.Connection,
    thread_key: str,
    new_events: Sequence[NewEvent] | EventBatch,
    *,
    origin: str = "",
) -> list[EventRecord]:
    """Append events with the next ids of the session's counter.

    The counter update takes the session row's lock, so appenders of one session serialise
    and commit in id order: a reader tailing `event_id > N` never skips a row. Synchronous,
    for transactions run whole on a thread (`Store.run_write`); `append_events` is the same
    on an async connection.
    """
    if not new_events:
        return []
    batch = _as_batch(conn.dialect.name, new_events)
    advanced = conn.execute(_advance_counter(thread_key, len(batch)))
    records = batch.records(thread_key, advanced.scalar_one_or_none())
    conn.exec_driver_sql(*batch.insert(records))
    if conn.dialect.name == "postgresql":
        # Delivered at commit, so listeners only ever wake for visible rows.
        conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, f"{origin} {thread_key}")))
    return records


def _as_batch(dialect: str, new_events: Sequence[NewEvent] | EventBatch) -> EventBatch:
    return new_events if isinstance(new_events, EventBatch) else EventBatch(dialect, new_events)


def _advance_counter(thread_key: str, by: int) -> sa.Update:
    return (
        sa.update(sessions)
        .where(sessions.c.thread_key == thread_key)
        .values(last_event_id=sessions.c.last_event_id + by)
        .returning(sessions.c.last_event_id)
    )


# NewEvent fields by position, for iteration that stays in C.
_EVENT_TYPE, _PAYLOAD, _EXECUTION_ID = itemgetter(0), itemgetter(1), itemgetter(2)
_KIND = itemgetter(0, 2)
_INSERT_UNIFORM = {
    "sqlite": _INSERT_HEAD + " SELECT ?, ? + key, ?, ?, value, ? FROM json_each(?)",
    "postgresql": _INSERT_HEAD + " SELECT $1, $2 + t.ord - 1, $3, $4, t.payload, $5"
    " FROM unnest($6::text[]) WITH ORDINALITY AS t(payload, ord)",
}
_INSERT_ROWS = {
    "sqlite": _INSERT_HEAD + " VALUES (?, ?, ?, ?, ?, ?)",
    "postgresql": _INSERT_HEAD + " VALUES ($1, $2, $3, $4, $5, $6)",
}


def _created_at(dialect: str, moment: datetime) -> object:
    """What UTCDateTime would bind: naive UTC text on SQLite, the aware value elsewhere."""
    if dialect == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


async def events_after(
    conn: AsyncConnection,
    thread_key: str,
    after_event_id: int,
    *,
    execution_id: str | None = None,
    limit: int = 1000,
) -> list[EventRecord]:
    query = (
        sa.select(*_EVENT_COLUMNS)
        .where(events.c.thread_key == thread_key, events.c.event_id > after_event_id)
        .order_by(events.c.event_id)
        .limit(limit)
    )
    if execution_id is not None:
        query = query.where(events.c.execution_id == execution_id)
    result = await conn.execute(query)
    return [EventRecord(*row) for row in result.all()]


async def last_event_id(conn: AsyncConnection, thread_key: str) -> int | None:
    return (
        await conn.execute(
            sa.select(sessions.c.last_event_id).where(sessions.c.thread_key == thread_key)
        )
    ).scalar_one_or_none()
