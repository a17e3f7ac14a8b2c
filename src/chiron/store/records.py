"""Plain records the query modules return; the layers above never see SQLAlchemy rows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


def new_id(prefix: str) -> str:
    """`msg_<32 hex>`, `exe_<32 hex>`, `sbx_…`, `prn_…` (DESIGN.md §3)."""
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class SessionRecord:
    thread_key: str
    title: str | None
    status: str
    harness_type: str
    harness_thread_id: str | None
    persona_id: str | None
    sandbox_id: str | None
    principal_id: str
    metadata: dict[str, Any]
    last_event_id: int
    created_at: datetime
    updated_at: datetime
    last_active_at: datetime


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    thread_key: str
    status: str
    idempotency_key: str | None
    request: dict[str, Any]
    sandbox_id: str | None
    output_start_offset: int | None
    output_offset: int | None
    input_token: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    error: str | None
    reason: str | None
    completion_reason: str | None
    result_text: str | None
    first_output_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def is_active(self) -> bool:
        return self.status in ("queued", "running")


# Events and new events are NamedTuples: made once per output line on the hottest path, where a
# tuple is several times cheaper to build than a frozen dataclass.
class EventRecord(NamedTuple):
    thread_key: str
    event_id: int
    execution_id: str | None
    event_type: str
    payload: str
    created_at: datetime


class NewEvent(NamedTuple):
    event_type: str
    payload: str
    execution_id: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    message_id: str
    thread_key: str
    client_message_id: str | None
    role: str
    parts: list[Any]
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class SandboxRecord:
    sandbox_id: str
    thread_key: str
    backend: str
    harness_type: str
    state: str
    created_at: datetime
    last_active_at: datetime
    idle_pause_at: datetime | None


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    name: str
    key_hash: str
    thread_prefixes: list[str]
    created_at: datetime
    revoked_at: datetime | None
