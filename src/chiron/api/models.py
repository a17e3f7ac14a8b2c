"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chiron.store.records import ExecutionRecord, SessionRecord


class ErrorBody(BaseModel):
    ok: Literal[False] = False
    error: str
    code: str


class CreateSessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    harness_type: str = Field(description="Harness name, e.g. `shell`.")
    persona_id: str | None = None
    metadata: dict[str, Any] | None = None
    on_harness_conflict: Literal["reject", "restart"] = "reject"


class Session(BaseModel):
    thread_key: str
    title: str | None
    status: str
    harness_type: str
    harness_thread_id: str | None
    persona_id: str | None
    sandbox_id: str | None
    principal_id: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_active_at: datetime

    @classmethod
    def of(cls, record: SessionRecord) -> Session:
        return cls(
            **{name: getattr(record, name) for name in cls.model_fields},
        )


class SessionResponse(BaseModel):
    ok: Literal[True] = True
    session: Session
    context: dict[str, Any] = Field(description="What the thread key says about its platform.")


class CreateSessionResponse(SessionResponse):
    created: bool
    harness_switched: bool


class SessionListResponse(BaseModel):
    ok: Literal[True] = True
    sessions: list[Session]
    next_cursor: str | None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_message_id: str | None = Field(default=None, max_length=256)
    role: Literal["user", "assistant", "system", "tool"]
    parts: list[Any]
    metadata: dict[str, Any] | None = None


class MessagesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn]


class MessagesResponse(BaseModel):
    ok: Literal[True] = True
    message_ids: list[str]


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idempotency_key: str | None = Field(default=None, max_length=256)
    input_lines: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    idle_timeout_ms: int | None = None
    max_duration_ms: int | None = None


class ExecuteResponse(BaseModel):
    ok: Literal[True] = True
    execution_id: str
    thread_key: str
    status: str


class Execution(BaseModel):
    execution_id: str
    thread_key: str
    status: str
    idempotency_key: str | None
    sandbox_id: str | None
    error: str | None
    reason: str | None
    completion_reason: str | None
    result_text: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, record: ExecutionRecord) -> Execution:
        return cls(**{name: getattr(record, name) for name in cls.model_fields})


class ExecutionResponse(BaseModel):
    ok: Literal[True] = True
    execution: Execution


class InterruptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


class InterruptResponse(BaseModel):
    ok: Literal[True] = True
    interrupted: bool
    execution_id: str | None


class SandboxControlResponse(BaseModel):
    ok: Literal[True] = True
    changed: bool
    sandbox_id: str | None


class Event(BaseModel):
    event_id: int
    thread_key: str
    execution_id: str | None
    event_type: str
    payload: Any = Field(description="JSON object; for session.output.line the raw line string.")
    created_at: datetime


class EventsResponse(BaseModel):
    ok: Literal[True] = True
    events: list[Event]
    last_event_id: int


class Health(BaseModel):
    ok: bool
    status: str


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    thread_prefixes: list[str] = Field(min_length=1)


class ApiKey(BaseModel):
    key_id: str
    name: str
    thread_prefixes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class CreateKeyResponse(BaseModel):
    ok: Literal[True] = True
    key: ApiKey
    token: str = Field(description="Shown once; only its hash is stored.")


class KeyListResponse(BaseModel):
    ok: Literal[True] = True
    keys: list[ApiKey]


class OkResponse(BaseModel):
    ok: Literal[True] = True
