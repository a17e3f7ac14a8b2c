"""Replay and live tail of a session's event log: SSE, or JSON long-poll (DESIGN.md §4).

A stream holds a database connection only while it queries a page; between pages it waits on
the notifier (woken after commits, here or via PostgreSQL NOTIFY) with a safety re-query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from chiron.api.auth import ThreadCaller, control_plane
from chiron.api.models import ErrorBody, Event, EventsResponse
from chiron.runtime.control_plane import ControlPlane
from chiron.runtime.driver import TERMINAL_EVENT
from chiron.runtime.event_log import OUTPUT_LINE
from chiron.store import event_queries, execution_queries
from chiron.store.records import EventRecord

router = APIRouter(prefix="/api", tags=["events"])

PAGE = 1000
# Pages served from memory are bigger: each is one write through the middleware stack, and a
# flood of output commits thousands of events at a time.
MEMORY_PAGE = 5000
_TERMINAL_TYPES = frozenset(TERMINAL_EVENT.values())
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def decoded_payload(event: EventRecord) -> Any:
    if event.event_type == OUTPUT_LINE:
        return event.payload
    return json.loads(event.payload)


def sse_frame(event: EventRecord) -> str:
    payload = event.payload
    if "\n" in payload or "\r" in payload:
        # SSE splits data on any line break: one `data:` field per line keeps it intact.
        data = "\n".join(f"data: {part}" for part in _LINE_BREAKS.split(payload))
        return f"id: {event.event_id}\nevent: {event.event_type}\n{data}\n\n"
    return f"id: {event.event_id}\nevent: {event.event_type}\ndata: {payload}\n\n"


class EventTail:
    """Pages through events after a cursor, then waits for more."""

    def __init__(
        self, plane: ControlPlane, thread_key: str, after: int, execution_id: str | None
    ) -> None:
        self._plane = plane
        self.thread_key = thread_key
        self.cursor = after
        self.execution_id = execution_id
        self.ended = False
        self.more = False  # the last page was full: ask again before waiting
        self._checked_remote = -1
        self._checked_at = 0.0

    async def next_text(self) -> bytes:
        """The next page as SSE wire text; whole-session streams share pages rendered once."""
        if self.execution_id is None:
            rendered = self._plane.event_log.recent.rendered_after(
                self.thread_key, self.cursor, limit=MEMORY_PAGE, render=sse_frame
            )
            if rendered is not None and (rendered[0] or not self._database_check_due()):
                text, scanned_to = rendered
                self.more = scanned_to - self.cursor >= MEMORY_PAGE
                self.cursor = scanned_to
                return text
        return "".join(sse_frame(event) for event in await self.next_page()).encode()

    async def next_page(self) -> list[EventRecord]:
        cached = self._plane.event_log.recent.after(
            self.thread_key, self.cursor, execution_id=self.execution_id, limit=PAGE
        )
        if cached is not None and not cached[0] and self._database_check_due():
            cached = None
        if cached is not None:
            page, scanned_to = cached
            self.more = scanned_to - self.cursor >= PAGE
            kept = self._keep(page)
            if not self.ended:
                self.cursor = scanned_to
            return kept
        self._checked_remote = self._plane.notifier.remote_generation(self.thread_key)
        self._checked_at = time.monotonic()
        async with self._plane.store.read() as conn:
            finished = False
            if self.execution_id is not None:
                # Read the status BEFORE the page: a terminal status then guarantees the
                # terminal event is visible to the page query that follows.
                execution = await execution_queries.get_execution(conn, self.execution_id)
                finished = execution is None or not execution.is_active
            page = await event_queries.events_after(
                conn, self.thread_key, self.cursor, execution_id=self.execution_id, limit=PAGE
            )
        if finished and not page:
            self.ended = True
        self.more = len(page) == PAGE
        return self._keep(page)

    def _database_check_due(self) -> bool:
        """Caught up with this process's writes: only another process can have written more."""
        return (
            self._plane.notifier.remote_generation(self.thread_key) != self._checked_remote
            or time.monotonic() - self._checked_at >= self._plane.settings.stream_requery_seconds
        )

    def _keep(self, page: list[EventRecord]) -> list[EventRecord]:
        """Advance the cursor over `page`, stopping after an execution's terminal event."""
        kept: list[EventRecord] = []
        for event in page:
            kept.append(event)
            self.cursor = event.event_id
            if self.execution_id is not None and event.event_type in _TERMINAL_TYPES:
                self.ended = True
                break
        return kept

    def signal(self) -> asyncio.Event:
        return self._plane.notifier.signal_for(self.thread_key)


@router.get(
    "/session/{thread_key:path}/events",
    response_model=EventsResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream or JSON page"},
        **{code: {"model": ErrorBody} for code in (400, 401, 403, 404)},
    },
)
async def stream_events(
    thread_key: str,
    request: Request,
    plane: Annotated[ControlPlane, Depends(control_plane)],
    _caller: ThreadCaller,
    after_event_id: Annotated[int | None, Query(ge=0)] = None,
    execution_id: str | None = None,
    format: Annotated[str | None, Query(pattern="^(sse|json)$")] = None,
    wait: Annotated[float, Query(ge=0, le=60)] = 25.0,
    limit: Annotated[int, Query(ge=1, le=PAGE)] = PAGE,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    await plane.service.get_session(thread_key)
    after = after_event_id
    if after is None and last_event_id is not None and last_event_id.strip().isdigit():
        after = int(last_event_id.strip())
    tail = EventTail(plane, thread_key, after or 0, execution_id)
    wants_json = format == "json" or (
        format is None and "application/json" in request.headers.get("accept", "")
    )
    if wants_json:
        return await _long_poll(tail, wait, limit)
    return StreamingResponse(
        _sse(tail, plane),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _long_poll(tail: EventTail, wait: float, limit: int) -> EventsResponse:
    deadline = time.monotonic() + wait
    while True:
        signal = tail.signal()
        page = await tail.next_page()
        if page or tail.ended or time.monotonic() >= deadline:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), max(0.0, deadline - time.monotonic()))
    page = page[:limit]
    last = page[-1].event_id if page else tail.cursor
    return EventsResponse(
        events=[
            Event(
                event_id=e.event_id,
                thread_key=e.thread_key,
                execution_id=e.execution_id,
                event_type=e.event_type,
                payload=decoded_payload(e),
                created_at=e.created_at,
            )
            for e in page
        ],
        last_event_id=last,
    )


async def _sse(tail: EventTail, plane: ControlPlane) -> AsyncIterator[str | bytes]:
    settings = plane.settings
    last_write = time.monotonic()
    yield ": stream open\n\n"
    while True:
        signal = tail.signal()
        text = await tail.next_text()
        if text:
            yield text
            last_write = time.monotonic()
        if tail.ended:
            return
        if tail.more:
            continue
        until_keepalive = settings.sse_keepalive_seconds - (time.monotonic() - last_write)
        timeout = max(0.0, min(settings.stream_requery_seconds, until_keepalive))
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except TimeoutError:
            if time.monotonic() - last_write >= settings.sse_keepalive_seconds:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()
