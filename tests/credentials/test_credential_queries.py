"""The registry's tables and queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from chiron.store import credential_queries as q
from chiron.store.engine import Store
from chiron.store.tables import metadata

CREDENTIAL_TABLES = {"secrets", "roles", "principal_roles", "grants", "egress_audit"}


async def _secret(store: Store, name: str, fingerprint: str = "00000000") -> bool:
    async with store.write() as conn:
        return await q.upsert_secret(
            conn,
            name=name,
            type="http",
            spec={"type": "http", "hosts": ["api.example.com"]},
            ciphertext=b"\x00sealed",
            nonce=b"n" * 12,
            key_id="k" * 16,
            fingerprint=fingerprint,
        )


async def test_migration_0002_matches_the_declared_tables(store: Store) -> None:
    def diff(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return [d for d in compare_metadata(context, metadata) if _table_of(d) in CREDENTIAL_TABLES]

    async with store.read() as conn:
        assert await conn.run_sync(diff) == []


def _table_of(difference: object) -> str | None:
    item = difference[0] if isinstance(difference, list) else difference
    for part in item if isinstance(item, tuple) else ():
        table = getattr(part, "table", None)
        if isinstance(part, sa.Table):
            return part.name
        if isinstance(table, sa.Table):
            return table.name
        if isinstance(part, str) and part in CREDENTIAL_TABLES:
            return part
    return None


async def test_replacing_a_secret_keeps_its_grants_and_deleting_takes_them(store: Store) -> None:
    assert await _secret(store, "TOKEN") is True
    async with store.write() as conn:
        await q.upsert_grant(conn, secret_name="TOKEN", principal_id="prn_1", role=None, priority=1)
    assert await _secret(store, "TOKEN", fingerprint="11111111") is False
    async with store.write() as conn:
        row = await q.get_secret(conn, "TOKEN")
        assert row is not None and row.fingerprint == "11111111" and row.created_at < row.updated_at
        assert b"sealed" not in repr(row).encode()
        assert len(await q.list_grants(conn, secret_name="TOKEN")) == 1
        assert await q.update_secret_spec(conn, name="TOKEN", type="http", spec={"x": 1})
        assert not await q.update_secret_spec(conn, name="NOPE", type="http", spec={})
        assert await q.delete_secret(conn, "TOKEN") == 1
        assert await q.delete_secret(conn, "TOKEN") is None
        assert await q.list_grants(conn) == []


async def test_grants_are_unique_per_subject_and_idempotent(store: Store) -> None:
    await _secret(store, "TOKEN")
    async with store.write() as conn:
        await q.upsert_role(conn, "dev", None)
        first, created = await q.upsert_grant(
            conn, secret_name="TOKEN", principal_id="prn_1", role=None, priority=1
        )
        again, created_again = await q.upsert_grant(
            conn, secret_name="TOKEN", principal_id="prn_1", role=None, priority=9
        )
        by_role, _ = await q.upsert_grant(
            conn, secret_name="TOKEN", principal_id=None, role="dev", priority=2
        )
        assert created and not created_again
        assert again.grant_id == first.grant_id and again.priority == 9
        assert by_role.grant_id != first.grant_id
        assert {g.grant_id for g in await q.grants_for(conn, "prn_1", [])} == {first.grant_id}
        assert len(await q.grants_for(conn, "prn_1", ["dev"])) == 2
        assert len(await q.grants_for(conn, "prn_2", ["dev"])) == 1
        assert await q.delete_grant(conn, secret_name="TOKEN", principal_id=None, role="dev")
        assert not await q.delete_grant(conn, secret_name="TOKEN", principal_id=None, role="dev")
    with pytest.raises(IntegrityError):
        async with store.write() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO grants (grant_id, secret_name, principal_id, role, priority, "
                    "created_at, updated_at) VALUES ('g', 'TOKEN', 'prn_1', 'dev', 0, "
                    ":now, :now)"
                ),
                {"now": datetime.now(UTC).replace(tzinfo=None)},
            )


async def test_roles_and_assignments(store: Store) -> None:
    async with store.write() as conn:
        assert await q.upsert_role(conn, "dev", "developers") is True
        assert await q.upsert_role(conn, "dev", "people who build") is False
        role = await q.get_role(conn, "dev")
        assert role is not None and role.description == "people who build"
        assert await q.assign_role(conn, "prn_1", "dev") is True
        assert await q.assign_role(conn, "prn_1", "dev") is False
        assert await q.roles_of(conn, "prn_1") == ["dev"]
        assert await q.unassign_role(conn, "prn_1", "dev") is True
        assert await q.roles_of(conn, "prn_1") == []
        assert [r.name for r in await q.list_roles(conn)] == ["dev"]


async def test_audit_records_filter_and_come_newest_first(store: Store) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    async with store.write() as conn:
        for i in range(5):
            await q.insert_audit_record(
                conn,
                time=start + timedelta(minutes=i),
                sandbox_id="sbx_1",
                thread_key="cli:a" if i % 2 == 0 else "cli:b",
                principal_id="prn_1",
                host="api.example.com",
                method="GET",
                path=f"/v1/{i}",
                status=200,
                secret_names=["TOKEN"],
                bytes_in=10 * i,
                bytes_out=i,
                duration_ms=i,
            )
    async with store.read() as conn:
        everything = await q.list_audit(conn, limit=10)
        assert [r.path for r in everything] == [f"/v1/{i}" for i in (4, 3, 2, 1, 0)]
        assert everything[0].secret_names == ["TOKEN"] and everything[0].bytes_in == 40
        only_a = await q.list_audit(conn, limit=10, thread_key="cli:a")
        assert [r.path for r in only_a] == ["/v1/4", "/v1/2", "/v1/0"]
        recent = await q.list_audit(conn, limit=10, since=start + timedelta(minutes=3))
        assert [r.path for r in recent] == ["/v1/4", "/v1/3"]
        assert len(await q.list_audit(conn, limit=2)) == 2
