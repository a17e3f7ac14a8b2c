"""Transcript messages, idempotent per (thread key, client message id)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import MessageRecord, new_id
from chiron.store.tables import messages
from chiron.store.types import utcnow


async def find_by_client_id(
    conn: AsyncConnection, thread_key: str, client_message_id: str
) -> MessageRecord | None:
    row = (
        (
            await conn.execute(
                sa.select(messages).where(
                    messages.c.thread_key == thread_key,
                    messages.c.client_message_id == client_message_id,
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else MessageRecord(**dict(row))


async def append_message(
    conn: AsyncConnection,
    thread_key: str,
    *,
    client_message_id: str | None,
    role: str,
    parts: list[Any],
    metadata: dict[str, Any],
) -> tuple[str, bool]:
    """Returns (message_id, created); a replayed client id returns the original message."""
    if client_message_id is not None:
        existing = await find_by_client_id(conn, thread_key, client_message_id)
        if existing is not None:
            return existing.message_id, False
    message_id = await insert_message(
        conn,
        thread_key,
        client_message_id=client_message_id,
        role=role,
        parts=parts,
        metadata=metadata,
    )
    return message_id, True


async def insert_message(
    conn: AsyncConnection,
    thread_key: str,
    *,
    client_message_id: str | None,
    role: str,
    parts: list[Any],
    metadata: dict[str, Any],
) -> str:
    """Insert without the idempotency look-up, for callers that write a message only once."""
    message_id = new_id("msg")
    await conn.execute(
        sa.insert(messages).values(
            message_id=message_id,
            thread_key=thread_key,
            client_message_id=client_message_id,
            role=role,
            parts=parts,
            metadata=metadata,
            created_at=utcnow(),
        )
    )
    return message_id


async def list_messages(conn: AsyncConnection, thread_key: str) -> list[MessageRecord]:
    rows = (
        (
            await conn.execute(
                sa.select(messages)
                .where(messages.c.thread_key == thread_key)
                .order_by(messages.c.created_at, messages.c.message_id)
            )
        )
        .mappings()
        .all()
    )
    return [MessageRecord(**dict(row)) for row in rows]
