"""The event log: gap-free per-session ids allocated in the inserting transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import EventRecord, NewEvent
from chiron.store.tables import events, sessions
from chiron.store.types import utcnow

NOTIFY_CHANNEL = "chiron_events"
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


async def append_events(
    conn: AsyncConnection, thread_key: str, new_events: Sequence[NewEvent], *, origin: str = ""
) -> list[EventRecord]:
    """Append events with the next ids of the session's counter.

    The counter update takes the session row's lock, so appenders of one session serialise
    and commit in id order: a reader tailing `event_id > N` never skips a row.
    """
    if not new_events:
        return []
    count = len(new_events)
    last_id = (
        await conn.execute(
            sa.update(sessions)
            .where(sessions.c.thread_key == thread_key)
            .values(last_event_id=sessions.c.last_event_id + count)
            .returning(sessions.c.last_event_id)
        )
    ).scalar_one_or_none()
    if last_id is None:
        raise SessionMissing(thread_key)
    now = utcnow()
    first_id = last_id - count + 1
    records = [
        EventRecord(thread_key, first_id + index, event.execution_id, event.event_type,
                    event.payload, now)
        for index, event in enumerate(new_events)
    ]  # fmt: skip
    # The hot path of the whole system (every output line): hand rows straight to the driver
    # instead of letting SQLAlchemy process bind parameters row by row. Records are tuples in
    # the column order below, so PostgreSQL takes them as they are.
    rows: Sequence[tuple[object, ...]] = records
    if conn.dialect.name == "sqlite":
        created = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows = [(*record[:5], created) for record in records]
        placeholders = "?, ?, ?, ?, ?, ?"
    else:
        placeholders = "$1, $2, $3, $4, $5, $6"
    await conn.exec_driver_sql(
        "INSERT INTO events (thread_key, event_id, execution_id, event_type, payload, created_at)"
        f" VALUES ({placeholders})",
        rows,
    )
    if conn.dialect.name == "postgresql":
        # Delivered at commit, so listeners only ever wake for visible rows.
        await conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, f"{origin} {thread_key}")))
    return records


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
