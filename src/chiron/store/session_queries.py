"""Sessions: one durable row per thread key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import SessionRecord
from chiron.store.tables import executions, sessions
from chiron.store.types import utcnow


def _record(row: Any) -> SessionRecord:
    return SessionRecord(**dict(row))


async def get_session(
    conn: AsyncConnection, thread_key: str, *, for_update: bool = False
) -> SessionRecord | None:
    query = sa.select(sessions).where(sessions.c.thread_key == thread_key)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().one_or_none()
    return None if row is None else _record(row)


async def session_of_execution(conn: AsyncConnection, execution_id: str) -> SessionRecord | None:
    """The session an execution belongs to (one query)."""
    owner = sa.select(executions.c.thread_key).where(executions.c.execution_id == execution_id)
    query = sa.select(sessions).where(sessions.c.thread_key == owner.scalar_subquery())
    row = (await conn.execute(query)).mappings().one_or_none()
    return None if row is None else _record(row)


async def insert_session_if_absent(
    conn: AsyncConnection,
    *,
    thread_key: str,
    harness_type: str,
    persona_id: str | None,
    principal_id: str,
    metadata: dict[str, Any],
) -> bool:
    """Insert a new idle session; False when one already exists for this thread key."""
    now = utcnow()
    values = {
        "thread_key": thread_key,
        "status": "idle",
        "harness_type": harness_type,
        "persona_id": persona_id,
        "principal_id": principal_id,
        "metadata": metadata,
        "last_event_id": 0,
        "created_at": now,
        "updated_at": now,
        "last_active_at": now,
    }
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(sessions).values(values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(sessions).values(values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def update_session(conn: AsyncConnection, thread_key: str, **values: Any) -> None:
    await conn.run_sync(update_session_sync, thread_key, **values)


def update_session_sync(conn: sa.Connection, thread_key: str, /, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    conn.execute(sa.update(sessions).where(sessions.c.thread_key == thread_key).values(**values))


async def list_sessions(
    conn: AsyncConnection,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    status: str | None = None,
    thread_prefixes: list[str] | None = None,
) -> list[SessionRecord]:
    """Newest first; `before` is the (created_at, thread_key) of the last row already seen."""
    query = sa.select(sessions).order_by(sessions.c.created_at.desc(), sessions.c.thread_key.desc())
    if before is not None:
        created_at, thread_key = before
        query = query.where(
            sa.or_(
                sessions.c.created_at < created_at,
                sa.and_(sessions.c.created_at == created_at, sessions.c.thread_key < thread_key),
            )
        )
    if status is not None:
        query = query.where(sessions.c.status == status)
    if thread_prefixes is not None:
        query = query.where(
            sa.or_(
                sa.false(),
                *(
                    sessions.c.thread_key.startswith(prefix, autoescape=True)
                    for prefix in thread_prefixes
                ),
            )
        )
    rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [_record(row) for row in rows]
