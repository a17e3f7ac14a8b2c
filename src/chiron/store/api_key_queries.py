"""Front-door API keys, stored as SHA-256 hashes and scoped to thread-key prefixes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import ApiKeyRecord
from chiron.store.tables import api_keys
from chiron.store.types import utcnow


async def insert_api_key(
    conn: AsyncConnection, *, key_id: str, name: str, key_hash: str, thread_prefixes: list[str]
) -> ApiKeyRecord:
    record = ApiKeyRecord(
        key_id=key_id,
        name=name,
        key_hash=key_hash,
        thread_prefixes=thread_prefixes,
        created_at=utcnow(),
        revoked_at=None,
    )
    await conn.execute(sa.insert(api_keys).values(**record.__dict__))
    return record


async def find_by_hash(conn: AsyncConnection, key_hash: str) -> ApiKeyRecord | None:
    row = (
        (
            await conn.execute(
                sa.select(api_keys).where(
                    api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else ApiKeyRecord(**dict(row))


async def list_api_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    rows = (
        (await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))).mappings().all()
    )
    return [ApiKeyRecord(**dict(row)) for row in rows]


async def revoke_api_key(conn: AsyncConnection, key_id: str) -> bool:
    result = await conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)
