"""Sandbox rows: which sandboxes this control plane started, for whom, in which state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import SandboxRecord
from chiron.store.tables import sandboxes, sessions
from chiron.store.types import utcnow

LIVE_STATES = ("created", "running", "suspended")


def insert_sandbox_sync(
    conn: sa.Connection, *, sandbox_id: str, thread_key: str, backend: str, harness_type: str
) -> None:
    now = utcnow()
    conn.execute(
        sa.insert(sandboxes).values(
            sandbox_id=sandbox_id,
            thread_key=thread_key,
            backend=backend,
            harness_type=harness_type,
            state="running",
            created_at=now,
            last_active_at=now,
        )
    )


async def get_sandbox(conn: AsyncConnection, sandbox_id: str) -> SandboxRecord | None:
    row = (
        (await conn.execute(sa.select(sandboxes).where(sandboxes.c.sandbox_id == sandbox_id)))
        .mappings()
        .one_or_none()
    )
    return None if row is None else SandboxRecord(**dict(row))


async def update_sandbox(conn: AsyncConnection, sandbox_id: str, **values: Any) -> None:
    await conn.execute(
        sa.update(sandboxes).where(sandboxes.c.sandbox_id == sandbox_id).values(**values)
    )


async def live_sandboxes(conn: AsyncConnection) -> list[SandboxRecord]:
    rows = (
        (await conn.execute(sa.select(sandboxes).where(sandboxes.c.state.in_(LIVE_STATES))))
        .mappings()
        .all()
    )
    return [SandboxRecord(**dict(row)) for row in rows]


async def due_for_idle_pause(conn: AsyncConnection, now: datetime) -> list[SandboxRecord]:
    rows = (
        (
            await conn.execute(
                sa.select(sandboxes).where(
                    sandboxes.c.state == "running", sandboxes.c.idle_pause_at <= now
                )
            )
        )
        .mappings()
        .all()
    )
    return [SandboxRecord(**dict(row)) for row in rows]


async def touch_session_sandbox(
    conn: AsyncConnection, thread_key: str, *, idle_pause_at: datetime
) -> None:
    """Mark the session's current sandbox active now, to be paused at `idle_pause_at`."""
    current = sa.select(sessions.c.sandbox_id).where(sessions.c.thread_key == thread_key)
    await conn.execute(
        sa.update(sandboxes)
        .where(sandboxes.c.sandbox_id == current.scalar_subquery())
        .values(**touch_values(idle_pause_at))
    )


def touch_values(idle_pause_at: datetime | None) -> dict[str, Any]:
    return {"last_active_at": utcnow(), "idle_pause_at": idle_pause_at}
