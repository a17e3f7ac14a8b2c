"""Executions: queued → running → completed | failed | cancelled, claimed and leased."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import ExecutionRecord
from chiron.store.tables import ACTIVE_EXECUTION_STATUSES, executions
from chiron.store.types import utcnow

TERMINAL_STATUSES = ("completed", "failed", "cancelled")


def _record(row: Any) -> ExecutionRecord:
    return ExecutionRecord(**dict(row))


async def get_execution(conn: AsyncConnection, execution_id: str) -> ExecutionRecord | None:
    row = (
        (await conn.execute(sa.select(executions).where(executions.c.execution_id == execution_id)))
        .mappings()
        .one_or_none()
    )
    return None if row is None else _record(row)


async def find_by_idempotency_key(
    conn: AsyncConnection, thread_key: str, idempotency_key: str
) -> ExecutionRecord | None:
    row = (
        (
            await conn.execute(
                sa.select(executions).where(
                    executions.c.thread_key == thread_key,
                    executions.c.idempotency_key == idempotency_key,
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else _record(row)


async def active_execution(conn: AsyncConnection, thread_key: str) -> ExecutionRecord | None:
    row = (
        (
            await conn.execute(
                sa.select(executions).where(
                    executions.c.thread_key == thread_key,
                    executions.c.status.in_(ACTIVE_EXECUTION_STATUSES),
                )
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _record(row)


async def insert_queued(
    conn: AsyncConnection,
    *,
    execution_id: str,
    thread_key: str,
    idempotency_key: str | None,
    request: dict[str, Any],
) -> None:
    """`insert_queued_sync` on an async connection."""
    await conn.run_sync(
        insert_queued_sync,
        execution_id=execution_id,
        thread_key=thread_key,
        idempotency_key=idempotency_key,
        request=request,
    )


def insert_queued_sync(
    conn: sa.Connection,
    *,
    execution_id: str,
    thread_key: str,
    idempotency_key: str | None,
    request: dict[str, Any],
) -> None:
    """Insert a queued execution; the database rejects a second active one (IntegrityError)."""
    conn.execute(
        sa.insert(executions).values(
            execution_id=execution_id,
            thread_key=thread_key,
            status="queued",
            idempotency_key=idempotency_key,
            request=request,
            created_at=utcnow(),
        )
    )


async def claim(
    conn: AsyncConnection, execution_id: str, *, owner: str, lease_seconds: float
) -> ExecutionRecord | None:
    """`claim_sync` on an async connection."""
    return await conn.run_sync(claim_sync, execution_id, owner=owner, lease_seconds=lease_seconds)


def claim_sync(
    conn: sa.Connection, execution_id: str, *, owner: str, lease_seconds: float
) -> ExecutionRecord | None:
    """queued → running for exactly one caller, who also takes the output lease.

    Returns the claimed execution, or None when someone else claimed it (or it ended).
    """
    now = utcnow()
    row = (
        conn.execute(
            sa.update(executions)
            .where(executions.c.execution_id == execution_id, executions.c.status == "queued")
            .values(
                status="running",
                started_at=now,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
            )
            .returning(*executions.c)
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else _record(row)


async def take_over_lease(
    conn: AsyncConnection,
    execution_id: str,
    *,
    owner: str,
    lease_seconds: float,
    dead_owners: list[str],
) -> bool:
    """Adopt a running execution whose lease expired or whose owner is known to be dead."""
    now = utcnow()
    expired = sa.or_(
        executions.c.lease_owner.is_(None),
        executions.c.lease_expires_at < now,
        executions.c.lease_owner.in_(dead_owners) if dead_owners else sa.false(),
    )
    result = await conn.execute(
        sa.update(executions)
        .where(executions.c.execution_id == execution_id, executions.c.status == "running")
        .where(expired)
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    return bool(result.rowcount)


async def renew_lease(
    conn: AsyncConnection, execution_id: str, *, owner: str, lease_seconds: float, **values: Any
) -> bool:
    """Extend our lease (and store `values` with it); False when the lease is no longer ours."""
    renewal = lease_renewal(execution_id, owner=owner, lease_seconds=lease_seconds, **values)
    return bool((await conn.execute(renewal)).rowcount)


def lease_renewal(
    execution_id: str, *, owner: str, lease_seconds: float, **values: Any
) -> sa.Update:
    """The statement of `renew_lease`, for callers running it on a synchronous connection."""
    return (
        sa.update(executions)
        .where(
            executions.c.execution_id == execution_id,
            executions.c.status == "running",
            executions.c.lease_owner == owner,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds), **values)
    )


async def release_lease(conn: AsyncConnection, execution_id: str, *, owner: str) -> None:
    await conn.execute(
        sa.update(executions)
        .where(executions.c.execution_id == execution_id, executions.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def finish(
    conn: AsyncConnection,
    execution_id: str,
    *,
    status: str,
    owner: str | None,
    error: str | None = None,
    reason: str | None = None,
    completion_reason: str | None = None,
    result_text: str | None = None,
) -> bool:
    """Move an active execution to a terminal status, once; `owner` must hold the lease if set."""
    assert status in TERMINAL_STATUSES
    query = sa.update(executions).where(
        executions.c.execution_id == execution_id,
        executions.c.status.in_(ACTIVE_EXECUTION_STATUSES),
    )
    if owner is not None:
        query = query.where(
            sa.or_(executions.c.status == "queued", executions.c.lease_owner == owner)
        )
    result = await conn.execute(
        query.values(
            status=status,
            error=error,
            reason=reason,
            completion_reason=completion_reason,
            result_text=result_text,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount)


async def update_execution(conn: AsyncConnection, execution_id: str, **values: Any) -> None:
    await conn.execute(
        sa.update(executions).where(executions.c.execution_id == execution_id).values(**values)
    )


async def list_by_status(
    conn: AsyncConnection, status: str, *, limit: int = 500
) -> list[ExecutionRecord]:
    rows = (
        (
            await conn.execute(
                sa.select(executions)
                .where(executions.c.status == status)
                .order_by(executions.c.created_at)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [_record(row) for row in rows]


async def finished_for_session(
    conn: AsyncConnection, thread_key: str, *, limit: int = 200
) -> list[ExecutionRecord]:
    """The session's most recent finished executions (at most `limit`), oldest first."""
    rows = (
        (
            await conn.execute(
                sa.select(executions)
                .where(
                    executions.c.thread_key == thread_key,
                    executions.c.status.in_(TERMINAL_STATUSES),
                )
                .order_by(executions.c.created_at.desc())
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [_record(row) for row in reversed(rows)]
