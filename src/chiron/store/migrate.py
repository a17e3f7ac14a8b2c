"""Apply Alembic migrations at start-up, on either engine.

On PostgreSQL an advisory lock makes replicas that start together migrate one after another.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from chiron.store.engine import Store

_MIGRATION_LOCK_ID = 0x43_48_49_52  # "CHIR"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


async def upgrade_to_head(store: Store) -> None:
    async with store.engine.connect() as conn:
        if store.is_postgresql:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if store.is_postgresql:
                await conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                await conn.commit()


def _upgrade(connection: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
