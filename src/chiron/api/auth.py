"""Bearer authentication and the per-route access policies (DESIGN.md §3).

Token classes: the admin key (everything) and front-door keys scoped to thread-key prefixes.
Keys are stored as SHA-256 hashes and compared in constant time. Every route declares one of
the policy dependencies below; a test fails for a route that declares none.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chiron.runtime.control_plane import ControlPlane
from chiron.store import api_key_queries

_bearer = HTTPBearer(auto_error=False, description="Admin key or a front-door key")


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    is_admin: bool
    thread_prefixes: tuple[str, ...] = ()
    key_id: str | None = None

    def may_access(self, thread_key: str) -> bool:
        return self.is_admin or any(thread_key.startswith(p) for p in self.thread_prefixes)


def plane_of(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control_plane
    return plane


async def control_plane(request: Request) -> ControlPlane:
    """The app's control plane, as a dependency (async: FastAPI would run a plain function
    on its thread pool, a thread hop per request)."""
    return plane_of(request)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Policy: any valid key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    token = credentials.credentials
    admin_key: str = request.app.state.admin_key
    if hmac.compare_digest(token.encode(), admin_key.encode()):
        return Caller(is_admin=True)
    key_hash = hash_key(token)
    async with plane_of(request).store.read() as conn:
        record = await api_key_queries.find_by_hash(conn, key_hash)
    if record is None or not hmac.compare_digest(record.key_hash, key_hash):
        raise _unauthorized("invalid bearer token")
    return Caller(
        is_admin=False, thread_prefixes=tuple(record.thread_prefixes), key_id=record.key_id
    )


async def admin_only(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
    """Policy: the admin key only."""
    if not caller.is_admin:
        raise HTTPException(403, detail="this route needs the admin key")
    return caller


async def thread_access(
    thread_key: str, caller: Annotated[Caller, Depends(authenticated)]
) -> Caller:
    """Policy: a key whose scope covers the `{thread_key}` of the path."""
    if not caller.may_access(thread_key):
        raise HTTPException(403, detail="this key may not access that thread key")
    return caller


async def public() -> None:
    """Policy: no authentication (liveness, readiness, metrics)."""


POLICIES = (authenticated, admin_only, thread_access, public)

AdminCaller = Annotated[Caller, Depends(admin_only)]
ThreadCaller = Annotated[Caller, Depends(thread_access)]
AnyCaller = Annotated[Caller, Depends(authenticated)]
