"""Rows that store-level tests need before they can write anything else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.session_queries import insert_session_if_absent


async def insert_shell_session(conn: AsyncConnection, thread_key: str) -> None:
    await insert_session_if_absent(
        conn,
        thread_key=thread_key,
        harness_type="shell",
        persona_id=None,
        principal_id="prn_test",
        metadata={},
    )
