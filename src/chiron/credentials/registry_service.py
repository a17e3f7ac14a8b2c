"""The registry's operations over the store: secrets, roles, grants, effective configs, audit.

Each method owns its transaction. Values go in sealed and come out only through
`effective(..., with_values=True)` (for a proxy) and `known_values()` (for the redactor);
nothing this service returns to the API or CLI holds one.

After every change, all current values, and every value this process has ever known (a rotated
or deleted value stays sensitive), are registered with the redactor, so they are hidden in
every log line, event and output from then on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chiron.credentials.effective_config import EffectiveConfig, Grant, effective_config
from chiron.credentials.encryption import Sealed, SecretBox, load_secret_box
from chiron.credentials.errors import InvalidDeclaration, UnknownName
from chiron.credentials.names import validate_principal_id, validate_role_name, validate_secret_name
from chiron.credentials.secret_model import parse_declaration
from chiron.credentials.secret_spec import SecretSpec
from chiron.redaction import Redactor, default_redactor
from chiron.settings import Settings
from chiron.store import credential_queries as queries
from chiron.store.credential_queries import AuditRow, GrantRow, RoleRow, SecretRow
from chiron.store.engine import Store

logger = logging.getLogger(__name__)

MAX_PRIORITY = 1_000_000
MAX_AUDIT_LIMIT = 1000


@dataclass(frozen=True)
class ImplicitAccess:
    """Access a sandbox gets without a grant (see `CredentialRegistry.effective`)."""

    hosts: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    hosts_with_secret: Mapping[str, str] = field(default_factory=dict)
    # Below the lowest priority a grant may have.
    priority: int = -MAX_PRIORITY - 1


@dataclass(frozen=True)
class SecretSummary:
    """What a list shows: never the value, only a keyed fingerprint of it."""

    name: str
    type: str
    mode: str | None
    hosts: tuple[str, ...]
    fingerprint: str
    created_at: datetime
    updated_at: datetime


class CredentialRegistry:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        base_allowlist: Sequence[str] = (),
        redactor: Redactor = default_redactor,
    ) -> None:
        self.store = store
        self.box = box
        self.base_allowlist = tuple(base_allowlist)
        self._redactor = redactor
        self._seen_values: set[str] = set()
        self._refresh_lock = asyncio.Lock()
        # Called after every change that can alter an effective config (proxies reload).
        self.on_change: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def from_settings(
        cls, store: Store, settings: Settings, *, redactor: Redactor = default_redactor
    ) -> CredentialRegistry:
        return cls(
            store,
            load_secret_box(settings),
            base_allowlist=settings.egress_allow,
            redactor=redactor,
        )

    # -- secrets -----------------------------------------------------------------------------

    async def put_secret(
        self, name: str, declaration: Mapping[str, Any]
    ) -> tuple[SecretSummary, bool]:
        """Create or replace a secret; without a value, an existing secret keeps its own."""
        parsed = parse_declaration(name, declaration, value_required=False)
        async with self.store.write() as conn:
            if parsed.value is None:
                row = await queries.get_secret(conn, name)
                if row is None:
                    raise InvalidDeclaration("value", "is required when creating a secret")
                # Re-check the new declaration against the value it keeps.
                parse_declaration(name, {**declaration, "value": self._open(row)})
                await queries.update_secret_spec(
                    conn, name=name, type=parsed.spec.type, spec=parsed.spec.document()
                )
                created = False
            else:
                sealed = self.box.seal(name, parsed.value)
                created = await queries.upsert_secret(
                    conn,
                    name=name,
                    type=parsed.spec.type,
                    spec=parsed.spec.document(),
                    ciphertext=sealed.ciphertext,
                    nonce=sealed.nonce,
                    key_id=sealed.key_id,
                    fingerprint=self.box.fingerprint(parsed.value),
                )
            stored = await queries.get_secret(conn, name)
        assert stored is not None
        await self.refresh_known_values()
        await self._changed()
        logger.info(
            "secret %s %s",
            name,
            "created" if created else "replaced",
            extra={"secret": name, "fingerprint": stored.fingerprint},
        )
        return _summary(stored), created

    async def list_secrets(self) -> list[SecretSummary]:
        async with self.store.read() as conn:
            rows = await queries.list_secrets(conn)
        return [_summary(row) for row in rows]

    async def delete_secret(self, name: str) -> int:
        """Delete a secret and its grants; the number of grants that went with it."""
        validate_secret_name(name)
        async with self.store.write() as conn:
            removed = await queries.delete_secret(conn, name)
        if removed is None:
            raise UnknownName("secret", name)
        await self.refresh_known_values()
        await self._changed()
        logger.info("secret %s deleted with %d grants", name, removed, extra={"secret": name})
        return removed

    # -- roles -------------------------------------------------------------------------------

    async def put_role(self, name: str, description: str | None = None) -> tuple[RoleRow, bool]:
        validate_role_name(name, "name")
        if description is not None and len(description) > 1000:
            raise InvalidDeclaration("description", "must be at most 1000 characters")
        async with self.store.write() as conn:
            created = await queries.upsert_role(conn, name, description)
            role = await queries.get_role(conn, name)
        assert role is not None
        return role, created

    async def assign_role(self, principal_id: str, role: str) -> list[str]:
        """Give a principal a role (idempotent); the principal's roles after the change."""
        validate_principal_id(principal_id)
        validate_role_name(role, "name")
        async with self.store.write() as conn:
            if await queries.get_role(conn, role) is None:
                raise UnknownName("role", role)
            await queries.assign_role(conn, principal_id, role)
            roles = await queries.roles_of(conn, principal_id)
        await self._changed()
        return roles

    async def unassign_role(self, principal_id: str, role: str) -> list[str]:
        validate_principal_id(principal_id)
        validate_role_name(role, "name")
        async with self.store.write() as conn:
            await queries.unassign_role(conn, principal_id, role)
            roles = await queries.roles_of(conn, principal_id)
        await self._changed()
        return roles

    # -- grants ------------------------------------------------------------------------------

    async def add_grant(
        self, secret: str, *, principal_id: str | None, role: str | None, priority: int = 0
    ) -> tuple[GrantRow, bool]:
        """Grant a secret (idempotent: granting again sets the priority)."""
        _check_subject(secret, principal_id, role)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidDeclaration("priority", "must be a whole number")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidDeclaration("priority", f"must be within ±{MAX_PRIORITY}")
        async with self.store.write() as conn:
            if await queries.get_secret(conn, secret) is None:
                raise UnknownName("secret", secret)
            if role is not None and await queries.get_role(conn, role) is None:
                raise UnknownName("role", role)
            grant = await queries.upsert_grant(
                conn, secret_name=secret, principal_id=principal_id, role=role, priority=priority
            )
        await self._changed()
        return grant

    async def remove_grant(
        self, secret: str, *, principal_id: str | None, role: str | None
    ) -> bool:
        """Remove a grant (idempotent); False when there was none."""
        _check_subject(secret, principal_id, role)
        async with self.store.write() as conn:
            if await queries.get_secret(conn, secret) is None:
                raise UnknownName("secret", secret)
            removed = await queries.delete_grant(
                conn, secret_name=secret, principal_id=principal_id, role=role
            )
        await self._changed()
        return removed

    async def list_grants(
        self,
        *,
        secret: str | None = None,
        principal_id: str | None = None,
        role: str | None = None,
    ) -> list[GrantRow]:
        async with self.store.read() as conn:
            return await queries.list_grants(
                conn, secret_name=secret, principal_id=principal_id, role=role
            )

    # -- effective config and audit ----------------------------------------------------------

    async def effective(
        self,
        principal_id: str,
        *,
        with_values: bool = False,
        implicit: ImplicitAccess | None = None,
    ) -> EffectiveConfig:
        """The principal's effective config; values only when a proxy asks for them.

        `implicit` adds what the sandbox gets by what it runs rather than by grants (a model
        harness's endpoint and key): hosts always reachable, and secrets granted at a priority
        below every real grant when they exist, each with hosts reachable only then.
        """
        validate_principal_id(principal_id)
        implicit = implicit or ImplicitAccess()
        async with self.store.read() as conn:
            role_names = await queries.roles_of(conn, principal_id)
            grant_rows = await queries.grants_for(conn, principal_id, role_names)
            wanted = {g.secret_name for g in grant_rows} | set(implicit.secrets)
            rows = await queries.list_secrets(conn, sorted(wanted))
        specs = {row.name: spec for row in rows if (spec := _stored_spec(row)) is not None}
        values = (
            {row.name: self._open(row) for row in rows if row.name in specs}
            if with_values
            else None
        )
        grants = [Grant(g.secret_name, g.priority, g.principal_id, g.role) for g in grant_rows]
        grants += [
            Grant(name, implicit.priority, principal_id=principal_id)
            for name in implicit.secrets
            if name in specs
        ]
        hosts = [*self.base_allowlist, *implicit.hosts]
        hosts += [host for name, host in implicit.hosts_with_secret.items() if name in specs]
        return effective_config(principal_id, role_names, grants, specs.values(), hosts, values)

    async def audit(
        self, *, thread_key: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditRow]:
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise InvalidDeclaration("limit", f"must be from 1 to {MAX_AUDIT_LIMIT}")
        async with self.store.read() as conn:
            return await queries.list_audit(conn, limit=limit, thread_key=thread_key, since=since)

    # -- redaction ---------------------------------------------------------------------------

    async def known_values(self) -> list[str]:
        """Every stored value, decrypted (fails clearly under the wrong key)."""
        async with self.store.read() as conn:
            rows = await queries.list_secrets(conn)
        return [self._open(row) for row in rows]

    async def refresh_known_values(self) -> int:
        """Register every value with the redactor; the number of values now hidden."""
        async with self._refresh_lock:
            self._seen_values.update(await self.known_values())
            self._redactor.set_known_values(sorted(self._seen_values))
            return len(self._seen_values)

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    def _open(self, row: SecretRow) -> str:
        return self.box.open(row.name, Sealed(row.ciphertext, row.nonce, row.key_id))


async def load_known_values(
    store: Store, settings: Settings, *, redactor: Redactor = default_redactor
) -> CredentialRegistry:
    """At start-up: load (or create) the secrets key and hide every stored value from now on.

    Raises `SecretsKeyError` when the key is malformed or is not the one the values were
    stored under, so a server never runs unable to use or redact its secrets.
    """
    registry = CredentialRegistry.from_settings(store, settings, redactor=redactor)
    count = await registry.refresh_known_values()
    logger.info("secrets key %s loaded; %d secret values redacted", registry.box.key_id, count)
    return registry


def _check_subject(secret: str, principal_id: str | None, role: str | None) -> None:
    validate_secret_name(secret, "secret")
    if (principal_id is None) == (role is None):
        raise InvalidDeclaration("principal_id", "give exactly one of principal_id and role")
    if principal_id is not None:
        validate_principal_id(principal_id)
    if role is not None:
        validate_role_name(role)


def _stored_spec(row: SecretRow) -> SecretSpec | None:
    """A stored declaration, re-validated; one that no longer passes is left out (fail closed)."""
    try:
        return parse_declaration(row.name, row.spec, value_required=False).spec
    except InvalidDeclaration as exc:
        logger.warning("secret %s is left out of effective configs: %s", row.name, exc.message)
        return None


def _summary(row: SecretRow) -> SecretSummary:
    hosts = row.spec.get("hosts", [])
    mode = row.spec.get("mode")
    return SecretSummary(
        name=row.name,
        type=row.type,
        mode=mode if isinstance(mode, str) else None,
        hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else (),
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
