"""Admin routes for front-door API keys scoped to thread-key prefixes."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from chiron.api.auth import AdminCaller, control_plane, hash_key
from chiron.api.models import (
    ApiKey,
    CreateKeyBody,
    CreateKeyResponse,
    ErrorBody,
    KeyListResponse,
    OkResponse,
)
from chiron.runtime.control_plane import ControlPlane
from chiron.runtime.errors import NotFound
from chiron.store import api_key_queries
from chiron.store.records import ApiKeyRecord

router = APIRouter(
    prefix="/api/keys",
    tags=["keys"],
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 422)},
)

Plane = Annotated[ControlPlane, Depends(control_plane)]


@router.post("", response_model=CreateKeyResponse)
async def create_key(body: CreateKeyBody, plane: Plane, _caller: AdminCaller) -> CreateKeyResponse:
    token = "chiron_key_" + secrets.token_urlsafe(32)
    async with plane.store.write() as conn:
        record = await api_key_queries.insert_api_key(
            conn,
            key_id=str(uuid.uuid4()),
            name=body.name,
            key_hash=hash_key(token),
            thread_prefixes=body.thread_prefixes,
        )
    return CreateKeyResponse(key=_model(record), token=token)


@router.get("", response_model=KeyListResponse)
async def list_keys(plane: Plane, _caller: AdminCaller) -> KeyListResponse:
    async with plane.store.read() as conn:
        records = await api_key_queries.list_api_keys(conn)
    return KeyListResponse(keys=[_model(r) for r in records])


@router.delete("/{key_id}", response_model=OkResponse)
async def revoke_key(key_id: str, plane: Plane, _caller: AdminCaller) -> OkResponse:
    async with plane.store.write() as conn:
        if not await api_key_queries.revoke_api_key(conn, key_id):
            raise NotFound(f"no active key {key_id}", code="key_not_found")
    return OkResponse()


def _model(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        key_id=record.key_id,
        name=record.name,
        thread_prefixes=record.thread_prefixes,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )
