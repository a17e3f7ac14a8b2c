"""The credential registry's rows: secrets (sealed), roles, role assignments, grants, egress audit.

Values only ever arrive here sealed (`ciphertext` + `nonce`); nothing in this module sees a
plaintext value. Like every query module: functions take a connection and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.store.records import new_id
from chiron.store.tables import egress_audit, grants, principal_roles, roles, secrets_table
from chiron.store.types import utcnow


@dataclass(frozen=True)
class SecretRow:
    name: str
    type: str
    spec: dict[str, Any]
    ciphertext: bytes
    nonce: bytes
    key_id: str
    fingerprint: str
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:  # the ciphertext is noise in a log line
        return f"SecretRow(name={self.name!r}, type={self.type!r}, key_id={self.key_id!r})"


@dataclass(frozen=True)
class RoleRow:
    name: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True)
class GrantRow:
    grant_id: str
    secret_name: str
    principal_id: str | None
    role: str | None
    priority: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AuditRow:
    audit_id: int
    time: datetime
    sandbox_id: str | None
    thread_key: str | None
    principal_id: str | None
    host: str
    method: str
    path: str
    status: int | None
    secret_names: list[str]
    bytes_in: int
    bytes_out: int
    duration_ms: int


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """`INSERT` with `ON CONFLICT` support, in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


# -- secrets ---------------------------------------------------------------------------------


async def upsert_secret(
    conn: AsyncConnection,
    *,
    name: str,
    type: str,
    spec: dict[str, Any],
    ciphertext: bytes,
    nonce: bytes,
    key_id: str,
    fingerprint: str,
) -> bool:
    """Create or replace a secret in place (its grants stay); True when it was created."""
    now = utcnow()
    changes = {
        "type": type,
        "spec": spec,
        "ciphertext": ciphertext,
        "nonce": nonce,
        "key_id": key_id,
        "fingerprint": fingerprint,
        "updated_at": now,
    }
    statement = (
        _insert(conn, secrets_table)
        .values(name=name, created_at=now, **changes)
        .on_conflict_do_update(index_elements=["name"], set_=changes)
        .returning(secrets_table.c.created_at)
    )
    created_at = (await conn.execute(statement)).scalar_one()
    return bool(created_at == now)


async def update_secret_spec(
    conn: AsyncConnection, *, name: str, type: str, spec: dict[str, Any]
) -> bool:
    """Change a secret's declaration, keeping its value; False when there is no such secret."""
    result = await conn.execute(
        sa.update(secrets_table)
        .where(secrets_table.c.name == name)
        .values(type=type, spec=spec, updated_at=utcnow())
    )
    return bool(result.rowcount)


async def get_secret(conn: AsyncConnection, name: str) -> SecretRow | None:
    row = (
        (await conn.execute(sa.select(secrets_table).where(secrets_table.c.name == name)))
        .mappings()
        .one_or_none()
    )
    return None if row is None else SecretRow(**dict(row))


async def list_secrets(conn: AsyncConnection, names: list[str] | None = None) -> list[SecretRow]:
    query = sa.select(secrets_table).order_by(secrets_table.c.name)
    if names is not None:
        query = query.where(secrets_table.c.name.in_(names))
    rows = (await conn.execute(query)).mappings().all()
    return [SecretRow(**dict(row)) for row in rows]


async def delete_secret(conn: AsyncConnection, name: str) -> int | None:
    """Delete a secret and its grants; the number of grants removed, None if it was absent."""
    # The foreign key cascades too; deleting explicitly counts them and does not depend on
    # SQLite's foreign-key pragma.
    removed = await conn.execute(sa.delete(grants).where(grants.c.secret_name == name))
    result = await conn.execute(sa.delete(secrets_table).where(secrets_table.c.name == name))
    return int(removed.rowcount) if result.rowcount else None


# -- roles -----------------------------------------------------------------------------------


async def upsert_role(conn: AsyncConnection, name: str, description: str | None) -> bool:
    """Create a role, or set its description; True when it was created."""
    now = utcnow()
    statement = (
        _insert(conn, roles)
        .values(name=name, description=description, created_at=now)
        .on_conflict_do_update(index_elements=["name"], set_={"description": description})
        .returning(roles.c.created_at)
    )
    created_at = (await conn.execute(statement)).scalar_one()
    return bool(created_at == now)


async def get_role(conn: AsyncConnection, name: str) -> RoleRow | None:
    row = (
        (await conn.execute(sa.select(roles).where(roles.c.name == name))).mappings().one_or_none()
    )
    return None if row is None else RoleRow(**dict(row))


async def list_roles(conn: AsyncConnection) -> list[RoleRow]:
    rows = (await conn.execute(sa.select(roles).order_by(roles.c.name))).mappings().all()
    return [RoleRow(**dict(row)) for row in rows]


async def assign_role(conn: AsyncConnection, principal_id: str, role: str) -> bool:
    """Give a principal a role; False when it already had it."""
    statement = (
        _insert(conn, principal_roles)
        .values(principal_id=principal_id, role=role, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    return bool((await conn.execute(statement)).rowcount)


async def unassign_role(conn: AsyncConnection, principal_id: str, role: str) -> bool:
    result = await conn.execute(
        sa.delete(principal_roles).where(
            principal_roles.c.principal_id == principal_id, principal_roles.c.role == role
        )
    )
    return bool(result.rowcount)


async def roles_of(conn: AsyncConnection, principal_id: str) -> list[str]:
    query = (
        sa.select(principal_roles.c.role)
        .where(principal_roles.c.principal_id == principal_id)
        .order_by(principal_roles.c.role)
    )
    return list((await conn.execute(query)).scalars().all())


# -- grants ----------------------------------------------------------------------------------


async def upsert_grant(
    conn: AsyncConnection,
    *,
    secret_name: str,
    principal_id: str | None,
    role: str | None,
    priority: int,
) -> tuple[GrantRow, bool]:
    """Grant a secret to exactly one principal or role (idempotent; sets the priority)."""
    if (principal_id is None) == (role is None):
        raise ValueError("a grant names exactly one of principal_id and role")
    now = utcnow()
    subject = "principal_id" if principal_id is not None else "role"
    statement = (
        _insert(conn, grants)
        .values(
            grant_id=new_id("grt"),
            secret_name=secret_name,
            principal_id=principal_id,
            role=role,
            priority=priority,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["secret_name", subject],
            set_={"priority": priority, "updated_at": now},
        )
        .returning(*grants.c)
    )
    row = GrantRow(**dict((await conn.execute(statement)).mappings().one()))
    return row, row.created_at == now


async def delete_grant(
    conn: AsyncConnection, *, secret_name: str, principal_id: str | None, role: str | None
) -> bool:
    subject = (
        grants.c.principal_id == principal_id if principal_id is not None else grants.c.role == role
    )
    result = await conn.execute(
        sa.delete(grants).where(grants.c.secret_name == secret_name, subject)
    )
    return bool(result.rowcount)


async def list_grants(
    conn: AsyncConnection,
    *,
    secret_name: str | None = None,
    principal_id: str | None = None,
    role: str | None = None,
) -> list[GrantRow]:
    query = sa.select(grants).order_by(
        grants.c.secret_name, grants.c.principal_id.nulls_last(), grants.c.role
    )
    if secret_name is not None:
        query = query.where(grants.c.secret_name == secret_name)
    if principal_id is not None:
        query = query.where(grants.c.principal_id == principal_id)
    if role is not None:
        query = query.where(grants.c.role == role)
    rows = (await conn.execute(query)).mappings().all()
    return [GrantRow(**dict(row)) for row in rows]


async def grants_for(
    conn: AsyncConnection, principal_id: str, role_names: list[str]
) -> list[GrantRow]:
    """Every grant to the principal itself or to one of its roles."""
    subject = grants.c.principal_id == principal_id
    if role_names:
        subject = sa.or_(subject, grants.c.role.in_(role_names))
    rows = (
        (await conn.execute(sa.select(grants).where(subject).order_by(grants.c.grant_id)))
        .mappings()
        .all()
    )
    return [GrantRow(**dict(row)) for row in rows]


# -- egress audit ----------------------------------------------------------------------------


async def insert_audit_record(
    conn: AsyncConnection,
    *,
    host: str,
    method: str,
    path: str,
    status: int | None,
    secret_names: list[str],
    sandbox_id: str | None = None,
    thread_key: str | None = None,
    principal_id: str | None = None,
    bytes_in: int = 0,
    bytes_out: int = 0,
    duration_ms: int = 0,
    time: datetime | None = None,
) -> int:
    """One egress request; `path` without its query string, secret names without values."""
    statement = (
        sa.insert(egress_audit)
        .values(
            time=time or utcnow(),
            sandbox_id=sandbox_id,
            thread_key=thread_key,
            principal_id=principal_id,
            host=host,
            method=method,
            path=path,
            status=status,
            secret_names=secret_names,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=duration_ms,
        )
        .returning(egress_audit.c.audit_id)
    )
    return int((await conn.execute(statement)).scalar_one())


async def list_audit(
    conn: AsyncConnection,
    *,
    limit: int,
    thread_key: str | None = None,
    since: datetime | None = None,
) -> list[AuditRow]:
    """Newest first."""
    query = sa.select(egress_audit).order_by(
        egress_audit.c.time.desc(), egress_audit.c.audit_id.desc()
    )
    if thread_key is not None:
        query = query.where(egress_audit.c.thread_key == thread_key)
    if since is not None:
        query = query.where(egress_audit.c.time >= since)
    rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [AuditRow(**dict(row)) for row in rows]
