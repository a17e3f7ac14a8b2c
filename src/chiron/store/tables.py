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

# -- credential boundary (DESIGN.md §8) ---------------------------------------------------------

# Named `secrets` in SQL; the Python name keeps the standard library's `secrets` usable beside it.
secrets_table = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    # The declaration without its value (chiron.credentials.secret_model); safe to show.
    sa.Column("spec", JsonDocument, nullable=False),
    # AES-256-GCM of the value, its nonce, and which key sealed it.
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

principal_roles = sa.Table(
    "principal_roles",
    metadata,
    sa.Column("principal_id", sa.String(128), primary_key=True),
    sa.Column(
        "role", sa.String(64), sa.ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_principal_roles_role", "role"),
)

# A grant gives one principal or one role the use of one secret. NULLs never collide in a
# unique constraint, so each constraint only binds the rows of its own kind of subject.
grants = sa.Table(
    "grants",
    metadata,
    sa.Column("grant_id", sa.String(40), primary_key=True),
    sa.Column(
        "secret_name",
        sa.String(128),
        sa.ForeignKey("secrets.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("principal_id", sa.String(128), nullable=True),
    sa.Column(
        "role", sa.String(64), sa.ForeignKey("roles.name", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("(principal_id IS NULL) <> (role IS NULL)", name="ck_grants_one_subject"),
    sa.UniqueConstraint("secret_name", "principal_id", name="uq_grants_secret_principal"),
    sa.UniqueConstraint("secret_name", "role", name="uq_grants_secret_role"),
    sa.Index("ix_grants_principal", "principal_id"),
    sa.Index("ix_grants_role", "role"),
)

# One row per request through an egress proxy. Secret names only, never values; the path is
# stored without its query string.
egress_audit = sa.Table(
    "egress_audit",
    metadata,
    sa.Column(
        "audit_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("time", Timestamp, nullable=False),
    sa.Column("sandbox_id", sa.String(64), nullable=True),
    sa.Column("thread_key", sa.String(512), nullable=True),
    sa.Column("principal_id", sa.String(128), nullable=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("secret_names", JsonDocument, nullable=False),
    sa.Column("bytes_in", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("bytes_out", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_egress_audit_time", "time"),
    sa.Index("ix_egress_audit_thread", "thread_key", "time"),
)
