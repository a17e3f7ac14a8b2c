"""Admin routes of the credential registry (DESIGN.md §8): secrets, roles, grants, audit.

Admin key only. Values are write-only: they go in through `PUT /api/secrets/{name}` and no
answer, error or log line ever carries one back (lists show a keyed fingerprint). Invalid
declarations are 422 `invalid_declaration` naming the field; unknown names are 404.

The registry is built on first use from the control plane's store and settings and kept on
the app (`load_known_values` has already loaded the key and fed the redactor at start-up).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from chiron.api.auth import AdminCaller, plane_of
from chiron.api.models import ErrorBody
from chiron.credentials import (
    SECRET_TYPES,
    CredentialRegistry,
    InvalidDeclaration,
    SecretsKeyError,
    SecretSummary,
    UnknownName,
)
from chiron.runtime.errors import NotFound, Unavailable, Unprocessable
from chiron.store.credential_queries import AuditRow, GrantRow, RoleRow

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api",
    tags=["credentials"],
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)},
)


async def registry(request: Request) -> CredentialRegistry:
    found = plane_of(request).registry
    if found is None:
        raise HTTPException(503, detail="the server is still starting")
    return found


Registry = Annotated[CredentialRegistry, Depends(registry)]


@contextmanager
def _credential_errors() -> Iterator[None]:
    """The registry's errors as the API's (their messages never hold a value)."""
    try:
        yield
    except InvalidDeclaration as exc:
        raise Unprocessable(exc.message, code="invalid_declaration", field=exc.field) from None
    except UnknownName as exc:
        raise NotFound(exc.message, code=exc.code) from None
    except SecretsKeyError as exc:
        logger.error("secrets key problem: %s", exc.message)
        raise Unavailable(
            "the secrets key cannot open the stored secrets; see the server log",
            code="secrets_key_error",
        ) from None


# -- bodies ------------------------------------------------------------------------------------


class SecretDeclaration(BaseModel):
    """A secret's declaration; which fields apply depends on `type` (see the README)."""

    # Unknown fields reach the registry, which rejects them naming the field (fail closed).
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)
    type: Literal["http", "hmac_sign", "aws_auth", "oauth_token", "brokered_token"] = Field(
        description=f"One of {', '.join(SECRET_TYPES)}."
    )
    value: SecretStr | None = Field(
        default=None,
        description="The secret itself; write-only. Optional when replacing: then kept.",
    )
    hosts: list[str] | None = Field(
        default=None, description="Required: exact hosts or one-label wildcards (*.example.com)."
    )
    methods: list[str] | None = Field(default=None, description="HTTP verbs; default: all.")
    paths: list[str] | None = Field(default=None, description="Path prefixes; default: all.")
    mode: Literal["replace", "inject"] | None = Field(
        default=None, description="http, oauth_token, brokered_token: how the value is applied."
    )
    placeholder: str | None = Field(default=None, description="replace: default the name.")
    match_headers: list[str] | None = Field(
        default=None, description="replace: headers to swap in (default authorization)."
    )
    match_query: list[str] | None = Field(default=None, description="replace: query params.")
    match_path: bool | None = Field(default=None, description="replace: swap in the path.")
    match_body: bool | None = Field(default=None, description="replace: swap in the body.")
    inject_header: str | None = Field(default=None, description="inject: header to set.")
    inject_query: str | None = Field(default=None, description="inject: query param to set.")
    inject_formatter: str | None = Field(
        default=None, description="inject: e.g. `Bearer {value}` (default `{value}`)."
    )
    signature_header: str | None = Field(default=None, description="hmac_sign: header.")
    algorithm: Literal["sha1", "sha256", "sha512"] | None = Field(
        default=None, description="hmac_sign: default sha256."
    )
    signature_encoding: Literal["hex", "base64"] | None = Field(
        default=None, description="hmac_sign: default hex."
    )
    signature_formatter: str | None = Field(
        default=None, description="hmac_sign: e.g. `sha256={signature}`."
    )
    access_key_id: str | None = Field(default=None, description="aws_auth.")
    secret_access_key: SecretStr | None = Field(
        default=None, description="aws_auth: the value, under its AWS name; write-only."
    )
    regions: list[str] | None = Field(default=None, description="aws_auth: required.")
    services: list[str] | None = Field(default=None, description="aws_auth: required.")
    token_url: str | None = Field(default=None, description="oauth_token: https URL.")
    client_id: str | None = Field(default=None, description="oauth_token.")
    client_secret: SecretStr | None = Field(
        default=None, description="oauth_token: the value, under its OAuth name; write-only."
    )
    scopes: list[str] | None = Field(default=None, description="oauth_token.")
    broker_url: str | None = Field(default=None, description="brokered_token: https URL.")
    refresh_seconds: int | None = Field(default=None, description="brokered_token: 30 to 86400.")

    def declaration(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, item in {**self.model_dump(exclude_none=True), **(self.model_extra or {})}.items():
            document[key] = item.get_secret_value() if isinstance(item, SecretStr) else item
        return document


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(default=None, max_length=1000)


class GrantRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(description="The secret's name.")
    principal_id: str | None = Field(default=None, description="Exactly one of principal_id…")
    role: str | None = Field(default=None, description="…and role.")


class GrantBody(GrantRef):
    priority: int = Field(default=0, description="Higher wins a conflict on the same target.")


# -- answers -----------------------------------------------------------------------------------


class Secret(BaseModel):
    name: str
    type: str
    mode: str | None
    hosts: list[str]
    fingerprint: str = Field(description="First 8 hex of a keyed hash of the value.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, summary: SecretSummary) -> Secret:
        return cls(
            name=summary.name,
            type=summary.type,
            mode=summary.mode,
            hosts=list(summary.hosts),
            fingerprint=summary.fingerprint,
            created_at=summary.created_at,
            updated_at=summary.updated_at,
        )


class SecretResponse(BaseModel):
    ok: Literal[True] = True
    secret: Secret
    created: bool


class SecretListResponse(BaseModel):
    ok: Literal[True] = True
    secrets: list[Secret]


class SecretDeletedResponse(BaseModel):
    ok: Literal[True] = True
    removed_grants: int


class Role(BaseModel):
    name: str
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: RoleRow) -> Role:
        return cls(name=row.name, description=row.description, created_at=row.created_at)


class RoleResponse(BaseModel):
    ok: Literal[True] = True
    role: Role
    created: bool


class PrincipalRolesResponse(BaseModel):
    ok: Literal[True] = True
    principal_id: str
    roles: list[str]


class GrantOut(BaseModel):
    grant_id: str
    secret: str
    principal_id: str | None
    role: str | None
    priority: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: GrantRow) -> GrantOut:
        return cls(
            grant_id=row.grant_id,
            secret=row.secret_name,
            principal_id=row.principal_id,
            role=row.role,
            priority=row.priority,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class GrantResponse(BaseModel):
    ok: Literal[True] = True
    grant: GrantOut
    created: bool


class GrantRemovedResponse(BaseModel):
    ok: Literal[True] = True
    removed: bool


class GrantListResponse(BaseModel):
    ok: Literal[True] = True
    grants: list[GrantOut]


class EffectiveConfigOut(BaseModel):
    version: int
    principal_id: str
    roles: list[str]
    allowed_hosts: list[str] = Field(description="Base allowlist plus granted secrets' hosts.")
    secrets: list[dict[str, Any]] = Field(description="Granted secrets, declarations only.")
    hosts: dict[str, list[dict[str, Any]]] = Field(description="Per host, the transforms.")
    overridden: list[dict[str, str]] = Field(description="Conflicts and who won them, why.")
    env: dict[str, str] = Field(description="NAME=placeholder for replace-mode secrets.")
    hash: str = Field(description="SHA-256 of the canonical config; values excluded.")


class EffectiveResponse(BaseModel):
    ok: Literal[True] = True
    effective: EffectiveConfigOut


class AuditRecord(BaseModel):
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

    @classmethod
    def of(cls, row: AuditRow) -> AuditRecord:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class AuditResponse(BaseModel):
    ok: Literal[True] = True
    records: list[AuditRecord] = Field(description="Newest first.")


# -- routes ------------------------------------------------------------------------------------


@router.put("/secrets/{name}", response_model=SecretResponse)
async def put_secret(
    _caller: AdminCaller, name: str, body: SecretDeclaration, reg: Registry
) -> SecretResponse:
    """Create or replace a secret; the value is write-only."""
    with _credential_errors():
        summary, created = await reg.put_secret(name, body.declaration())
    return SecretResponse(secret=Secret.of(summary), created=created)


@router.get("/secrets", response_model=SecretListResponse)
async def list_secrets(_caller: AdminCaller, reg: Registry) -> SecretListResponse:
    with _credential_errors():
        summaries = await reg.list_secrets()
    return SecretListResponse(secrets=[Secret.of(s) for s in summaries])


@router.delete("/secrets/{name}", response_model=SecretDeletedResponse)
async def delete_secret(_caller: AdminCaller, name: str, reg: Registry) -> SecretDeletedResponse:
    """Delete a secret; its grants go with it."""
    with _credential_errors():
        removed = await reg.delete_secret(name)
    return SecretDeletedResponse(removed_grants=removed)


@router.put("/roles/{name}", response_model=RoleResponse)
async def put_role(
    _caller: AdminCaller,
    name: str,
    reg: Registry,
    body: Annotated[RoleBody | None, Body()] = None,
) -> RoleResponse:
    with _credential_errors():
        role, created = await reg.put_role(name, None if body is None else body.description)
    return RoleResponse(role=Role.of(role), created=created)


@router.put("/principals/{principal_id}/roles/{name}", response_model=PrincipalRolesResponse)
async def assign_role(
    _caller: AdminCaller, principal_id: str, name: str, reg: Registry
) -> PrincipalRolesResponse:
    with _credential_errors():
        roles = await reg.assign_role(principal_id, name)
    return PrincipalRolesResponse(principal_id=principal_id, roles=roles)


@router.delete("/principals/{principal_id}/roles/{name}", response_model=PrincipalRolesResponse)
async def unassign_role(
    _caller: AdminCaller, principal_id: str, name: str, reg: Registry
) -> PrincipalRolesResponse:
    with _credential_errors():
        roles = await reg.unassign_role(principal_id, name)
    return PrincipalRolesResponse(principal_id=principal_id, roles=roles)


@router.get("/grants", response_model=GrantListResponse)
async def list_grants(
    _caller: AdminCaller,
    reg: Registry,
    secret: str | None = None,
    principal_id: str | None = None,
    role: str | None = None,
) -> GrantListResponse:
    with _credential_errors():
        rows = await reg.list_grants(secret=secret, principal_id=principal_id, role=role)
    return GrantListResponse(grants=[GrantOut.of(r) for r in rows])


@router.post("/grants", response_model=GrantResponse)
async def add_grant(_caller: AdminCaller, body: GrantBody, reg: Registry) -> GrantResponse:
    """Grant a secret to a principal or a role (idempotent; sets the priority)."""
    with _credential_errors():
        row, created = await reg.add_grant(
            body.secret, principal_id=body.principal_id, role=body.role, priority=body.priority
        )
    return GrantResponse(grant=GrantOut.of(row), created=created)


@router.delete("/grants", response_model=GrantRemovedResponse)
async def remove_grant(_caller: AdminCaller, body: GrantRef, reg: Registry) -> GrantRemovedResponse:
    """Remove a grant (idempotent: `removed` says whether there was one)."""
    with _credential_errors():
        removed = await reg.remove_grant(
            body.secret, principal_id=body.principal_id, role=body.role
        )
    return GrantRemovedResponse(removed=removed)


@router.get("/principals/{principal_id}/effective", response_model=EffectiveResponse)
async def effective(_caller: AdminCaller, principal_id: str, reg: Registry) -> EffectiveResponse:
    """What the principal's egress proxy applies, without values, and its hash."""
    with _credential_errors():
        config = await reg.effective(principal_id)
    return EffectiveResponse(effective=EffectiveConfigOut(**config.to_json()))


@router.get("/audit", response_model=AuditResponse)
async def audit(
    _caller: AdminCaller,
    reg: Registry,
    thread_key: Annotated[str | None, Query(max_length=512)] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339; naive means UTC.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditResponse:
    """Egress records, newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with _credential_errors():
        rows = await reg.audit(thread_key=thread_key, since=since, limit=limit)
    return AuditResponse(records=[AuditRecord.of(r) for r in rows])
