"""Appending to a session's event log: redaction, the write transaction, and wake-ups.

Every event goes through `EventLog.write()`, so no payload reaches the table unredacted and no
reader is woken before the rows it will look for are committed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chiron.redaction import Redactor
from chiron.runtime.metrics import Metrics
from chiron.runtime.recent_events import RecentEvents
from chiron.store.engine import Store
from chiron.store.event_queries import EventBatch, append_events
from chiron.store.notifier import EventNotifier
from chiron.store.records import EventRecord, NewEvent

OUTPUT_LINE = "session.output.line"


def event_payload(
    redactor: Redactor, thread_key: str, execution_id: str | None, **fields: Any
) -> str:
    """An event's payload: its fields as compact JSON, redacted."""
    payload: dict[str, Any] = {"thread_key": thread_key}
    if execution_id is not None:
        payload["execution_id"] = execution_id
    payload.update(fields)
    return redactor.redact(json.dumps(payload, separators=(",", ":"), default=str))


class LogTransaction:
    """A write transaction that may append events; readers are woken after it commits.

    `append` stages an event; staged events are written together (one id allocation, one
    insert) before the transaction commits, or earlier when `append_raw` needs ids in order.
    """

    def __init__(self, conn: AsyncConnection, redactor: Redactor, origin: str) -> None:
        self.conn = conn
        self._redactor = redactor
        self._origin = origin
        self._staged: dict[str, list[NewEvent]] = {}
        self.appended: dict[str, list[EventRecord]] = {}

    def append(
        self, thread_key: str, event_type: str, execution_id: str | None = None, **fields: Any
    ) -> None:
        text = event_payload(self._redactor, thread_key, execution_id, **fields)
        self._staged.setdefault(thread_key, []).append(NewEvent(event_type, text, execution_id))

    async def append_raw(
        self, thread_key: str, new_events: Sequence[NewEvent] | EventBatch
    ) -> list[EventRecord]:
        """Append pre-built events (payloads already redacted) after any staged ones."""
        await self.flush()
        return await self._write(thread_key, new_events)

    async def run_sync(
        self, thread_key: str, work: Callable[[sa.Connection], list[EventRecord]]
    ) -> list[EventRecord]:
        """Run the synchronous `work` (as for `EventLog.write_sync`) in this transaction."""
        await self.flush()
        records = await self.conn.run_sync(work)
        self.appended.setdefault(thread_key, []).extend(records)
        return records

    async def flush(self) -> None:
        staged, self._staged = self._staged, {}
        for thread_key, new_events in staged.items():
            await self._write(thread_key, new_events)

    async def _write(
        self, thread_key: str, new_events: Sequence[NewEvent] | EventBatch
    ) -> list[EventRecord]:
        records = await append_events(self.conn, thread_key, new_events, origin=self._origin)
        self.appended.setdefault(thread_key, []).extend(records)
        return records


class EventLog:
    def __init__(
        self, store: Store, notifier: EventNotifier, redactor: Redactor, metrics: Metrics
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.redactor = redactor
        self.metrics = metrics
        self.recent = RecentEvents()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[LogTransaction]:
        async with self.store.write() as conn:
            tx = LogTransaction(conn, self.redactor, self.notifier.origin)
            yield tx
            await tx.flush()
        # Committed: publish before any await so buffers receive batches in commit order.
        for thread_key, records in tx.appended.items():
            self._publish(thread_key, records)

    async def write_sync(
        self, thread_key: str, work: Callable[[sa.Connection], list[EventRecord]]
    ) -> list[EventRecord]:
        """`write()` for a synchronous transaction (`Store.run_write`: one hop on SQLite).

        `work` appends to `thread_key` only, with payloads already redacted (`event_payload`),
        and returns the records it appended; readers are woken after the commit.
        """
        records = await self.store.run_write(work)
        self._publish(thread_key, records)
        return records

    def _publish(self, thread_key: str, records: list[EventRecord]) -> None:
        self.recent.add(thread_key, records)
        self.metrics.events_appended.inc(len(records))
        self.notifier.notify(thread_key)
