"""Routes of the session API (DESIGN.md §3)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from chiron.api.auth import AnyCaller, ThreadCaller, control_plane
from chiron.api.models import (
    CreateSessionBody,
    CreateSessionResponse,
    ErrorBody,
    ExecuteBody,
    ExecuteResponse,
    Execution,
    ExecutionResponse,
    InterruptBody,
    InterruptResponse,
    MessagesBody,
    MessagesResponse,
    SandboxControlResponse,
    Session,
    SessionListResponse,
    SessionResponse,
)
from chiron.runtime.control_plane import ControlPlane
from chiron.runtime.errors import InvalidInput
from chiron.runtime.session_service import ExecuteRequest, NewMessage, SessionService
from chiron.runtime.thread_keys import platform_context, validate_thread_key
from chiron.store import session_queries

router = APIRouter(prefix="/api", tags=["sessions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422)
}


async def service(plane: Annotated[ControlPlane, Depends(control_plane)]) -> SessionService:
    return plane.service


Service = Annotated[SessionService, Depends(service)]


@router.post(
    "/session/{thread_key:path}/messages", response_model=MessagesResponse, responses=ERRORS
)
async def append_messages(
    thread_key: str, body: MessagesBody, svc: Service, _caller: ThreadCaller
) -> MessagesResponse:
    ids = await svc.append_messages(
        thread_key,
        [
            NewMessage(
                role=m.role,
                parts=m.parts,
                client_message_id=m.client_message_id,
                metadata=m.metadata,
            )
            for m in body.messages
        ],
    )
    return MessagesResponse(message_ids=ids)


@router.post("/session/{thread_key:path}/execute", response_model=ExecuteResponse, responses=ERRORS)
async def execute(
    thread_key: str, body: ExecuteBody, svc: Service, _caller: ThreadCaller
) -> ExecuteResponse:
    execution_id, status = await svc.execute(
        thread_key,
        ExecuteRequest(
            input_lines=body.input_lines,
            idempotency_key=body.idempotency_key,
            metadata=body.metadata,
            idle_timeout_ms=body.idle_timeout_ms,
            max_duration_ms=body.max_duration_ms,
        ),
    )
    return ExecuteResponse(execution_id=execution_id, thread_key=thread_key, status=status)


@router.get(
    "/session/{thread_key:path}/executions/{execution_id}",
    response_model=ExecutionResponse,
    responses=ERRORS,
)
async def get_execution(
    thread_key: str, execution_id: str, svc: Service, _caller: ThreadCaller
) -> ExecutionResponse:
    return ExecutionResponse(
        execution=Execution.of(await svc.get_execution(thread_key, execution_id))
    )


@router.post(
    "/session/{thread_key:path}/interrupt", response_model=InterruptResponse, responses=ERRORS
)
async def interrupt(
    thread_key: str,
    svc: Service,
    _caller: ThreadCaller,
    body: Annotated[InterruptBody | None, Body()] = None,
) -> InterruptResponse:
    interrupted, execution_id = await svc.interrupt(
        thread_key, reason=body.reason if body else None
    )
    return InterruptResponse(interrupted=interrupted, execution_id=execution_id)


@router.post(
    "/session/{thread_key:path}/pause", response_model=SandboxControlResponse, responses=ERRORS
)
async def pause(thread_key: str, svc: Service, _caller: ThreadCaller) -> SandboxControlResponse:
    changed = await svc.pause(thread_key)
    return SandboxControlResponse(
        changed=changed, sandbox_id=(await svc.get_session(thread_key)).sandbox_id
    )


@router.post(
    "/session/{thread_key:path}/resume", response_model=SandboxControlResponse, responses=ERRORS
)
async def resume(thread_key: str, svc: Service, _caller: ThreadCaller) -> SandboxControlResponse:
    changed = await svc.resume(thread_key)
    return SandboxControlResponse(
        changed=changed, sandbox_id=(await svc.get_session(thread_key)).sandbox_id
    )


@router.post("/session/{thread_key:path}", response_model=CreateSessionResponse, responses=ERRORS)
async def create_session(
    thread_key: str, body: CreateSessionBody, svc: Service, _caller: ThreadCaller
) -> CreateSessionResponse:
    result = await svc.create_session(
        thread_key,
        harness_type=body.harness_type,
        persona_id=body.persona_id,
        metadata=body.metadata,
        on_harness_conflict=body.on_harness_conflict,
    )
    return CreateSessionResponse(
        session=Session.of(result.session),
        context=platform_context(thread_key),
        created=result.created,
        harness_switched=result.harness_switched,
    )


@router.get("/session/{thread_key:path}", response_model=SessionResponse, responses=ERRORS)
async def get_session(thread_key: str, svc: Service, _caller: ThreadCaller) -> SessionResponse:
    session = await svc.get_session(thread_key)
    return SessionResponse(session=Session.of(session), context=platform_context(thread_key))


@router.delete("/session/{thread_key:path}", response_model=SessionResponse, responses=ERRORS)
async def archive_session(thread_key: str, svc: Service, _caller: ThreadCaller) -> SessionResponse:
    session = await svc.archive(thread_key)
    return SessionResponse(session=Session.of(session), context=platform_context(thread_key))


@router.get("/sessions", response_model=SessionListResponse, responses=ERRORS)
async def list_sessions(
    caller: AnyCaller,
    plane: Annotated[ControlPlane, Depends(control_plane)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    status: Annotated[str | None, Query(pattern="^(idle|executing|failed|archived)$")] = None,
) -> SessionListResponse:
    before = _decode_cursor(cursor) if cursor else None
    async with plane.store.read() as conn:
        records = await session_queries.list_sessions(
            conn,
            limit=limit + 1,
            before=before,
            status=status,
            thread_prefixes=None if caller.is_admin else list(caller.thread_prefixes),
        )
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        next_cursor = _encode_cursor(last.created_at, last.thread_key)
    return SessionListResponse(sessions=[Session.of(r) for r in records], next_cursor=next_cursor)


def _encode_cursor(created_at: datetime, thread_key: str) -> str:
    raw = json.dumps([created_at.isoformat(), thread_key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, thread_key = json.loads(raw)
        return datetime.fromisoformat(created_at), validate_thread_key(thread_key)
    except (ValueError, TypeError, binascii.Error, InvalidInput):
        raise InvalidInput("cursor is not one this API returned", code="invalid_cursor") from None
