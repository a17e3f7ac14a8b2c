"""Every table of Chiron's store, declared once with dialect variants inline."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from chiron.store.types import UTCDateTime

metadata = sa.MetaData()

# JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JsonDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = UTCDateTime()

ACTIVE_EXECUTION_STATUSES = ("queued", "running")

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("thread_key", sa.String(512), primary_key=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("harness_type", sa.String(64), nullable=False),
    sa.Column("harness_thread_id", sa.String(256), nullable=True),
    sa.Column("persona_id", sa.String(256), nullable=True),
    sa.Column("sandbox_id", sa.String(64), nullable=True),
    sa.Column("principal_id", sa.String(64), nullable=False),
    sa.Column("metadata", JsonDocument, nullable=False),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("last_active_at", Timestamp, nullable=False),
    sa.Index("ix_sessions_created", "created_at", "thread_key"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column(
        "thread_key",
        sa.String(512),
        sa.ForeignKey("sessions.thread_key", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("client_message_id", sa.String(256), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("parts", JsonDocument, nullable=False),
    sa.Column("metadata", JsonDocument, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("thread_key", "client_message_id", name="uq_messages_client_id"),
    sa.Index("ix_messages_thread", "thread_key", "created_at"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("execution_id", sa.String(36), primary_key=True),
    sa.Column(
        "thread_key",
        sa.String(512),
        sa.ForeignKey("sessions.thread_key", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(256), nullable=True),
    # The execute request as received, so any process can replay a queued execution.
    sa.Column("request", JsonDocument, nullable=False),
    sa.Column("sandbox_id", sa.String(64), nullable=True),
    # Output-log offsets: where this execution's output starts and how far it is stored.
    sa.Column("output_start_offset", sa.BigInteger, nullable=True),
    sa.Column("output_offset", sa.BigInteger, nullable=True),
    sa.Column("input_token", sa.String(64), nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", Timestamp, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("completion_reason", sa.String(64), nullable=True),
    sa.Column("result_text", sa.Text, nullable=True),
    sa.Column("first_output_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.UniqueConstraint("thread_key", "idempotency_key", name="uq_executions_idempotency"),
    sa.Index("ix_executions_status", "status"),
    # At most one active execution per session, enforced by the database itself.
    sa.Index(
        "uq_executions_one_active",
        "thread_key",
        unique=True,
        sqlite_where=sa.text("status IN ('queued', 'running')"),
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    ),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "thread_key",
        sa.String(512),
        sa.ForeignKey("sessions.thread_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("execution_id", sa.String(36), nullable=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    # JSON text; for `session.output.line` the raw (redacted) harness line itself.
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_events_execution", "execution_id", "event_id"),
)

sandboxes = sa.Table(
    "sandboxes",
    metadata,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("thread_key", sa.String(512), nullable=False),
    sa.Column("backend", sa.String(32), nullable=False),
    sa.Column("harness_type", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_active_at", Timestamp, nullable=False),
    sa.Column("idle_pause_at", Timestamp, nullable=True),
    sa.Index("ix_sandboxes_thread", "thread_key"),
    sa.Index("ix_sandboxes_state", "state"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("thread_prefixes", JsonDocument, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
)
