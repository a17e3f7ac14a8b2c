"""Follows a session's SSE event stream and reconnects by itself when the connection drops.

The server numbers a session's events 1, 2, 3, … without gaps (DESIGN.md §4), so the follower
only has to remember the last id it delivered: every (re)connection sends it as
`Last-Event-ID`, and any event at or below it is dropped. That makes delivery exactly-once
and in order however often the connection breaks, even mid-frame.

When a stream counts as finished: an execution-scoped stream after that execution's terminal
event; a session stream never (a clean close is treated like a drop). An execution stream the
server closes without a terminal event (the cursor was already past it) is confirmed through
`confirm_end` before the follower gives up on it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from chiron.cli.errors import ApiError, ServerUnreachable

OUTPUT_LINE = "session.output.line"
TERMINAL_TYPES = frozenset(
    {"session.execution_completed", "session.execution_failed", "session.execution_cancelled"}
)
# Statuses a restarting server or a proxy in front of it answers for a moment; worth retrying.
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class StreamEvent:
    event_id: int
    event_type: str
    # For `session.output.line` the raw harness line (a string); otherwise the decoded JSON.
    payload: Any
    execution_id: str | None = None

    @classmethod
    def from_sse(
        cls, event_id: int, event_type: str, data: str, execution_id: str | None = None
    ) -> StreamEvent:
        """`execution_id` is the stream's filter, if any: output lines do not carry it."""
        payload: Any = data
        if event_type != OUTPUT_LINE:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = data
        if isinstance(payload, dict) and isinstance(payload.get("execution_id"), str):
            execution_id = payload["execution_id"]
        return cls(event_id, event_type, payload, execution_id)

    @classmethod
    def from_json(cls, event: Mapping[str, Any]) -> StreamEvent:
        return cls(
            int(event["event_id"]),
            str(event["event_type"]),
            event.get("payload"),
            event.get("execution_id"),
        )

    @property
    def is_terminal(self) -> bool:
        return self.event_type in TERMINAL_TYPES


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between attempts, capped, with jitter so clients do not stampede.

    `give_up_after` counts consecutive attempts that delivered no new event; None retries
    forever (for `events --follow`, where a person decides when to stop).
    """

    initial_delay: float = 0.1
    max_delay: float = 5.0
    factor: float = 2.0
    give_up_after: int | None = 30
    # Twice the server's keep-alive interval: silence that long means a dead connection.
    read_timeout: float = 45.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


ReconnectHook = Callable[[int, float, str], None]


class _Retryable(Exception):
    """This connection failed in a way a later attempt may not."""


class EventFollower:
    """Yields the events after `after`, reconnecting as needed; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        path: str,
        *,
        after: int = 0,
        execution_id: str | None = None,
        policy: ReconnectPolicy | None = None,
        raise_for_answer: Callable[[httpx.Response], Awaitable[None]] | None = None,
        confirm_end: Callable[[], Awaitable[bool]] | None = None,
        on_reconnect: ReconnectHook | None = None,
    ) -> None:
        self._http = http
        self._path = path
        self.cursor = after
        self._execution_id = execution_id
        self._policy = policy or ReconnectPolicy()
        self._raise_for_answer = raise_for_answer
        self._confirm_end = confirm_end
        self._on_reconnect = on_reconnect
        self.reconnects = 0
        self.finished = False

    def events(self) -> AsyncGenerator[StreamEvent, None]:
        """The events; close the generator (e.g. `contextlib.aclosing`) when leaving early."""
        return self._follow()

    def __aiter__(self) -> AsyncGenerator[StreamEvent, None]:
        return self._follow()

    async def _follow(self) -> AsyncGenerator[StreamEvent, None]:
        failures = 0
        while not self.finished:
            delivered_before = self.cursor
            problem: str
            try:
                # aclosing: a consumer that stops early must close the HTTP stream now.
                async with aclosing(self._connect_once()) as events:
                    async for event in events:
                        yield event
                        if self._execution_id is not None and event.is_terminal:
                            self.finished = True
                            return
                problem = "the server closed the stream"
                if self.cursor == delivered_before and await self._end_confirmed():
                    self.finished = True
                    return
            except _Retryable as exc:
                problem = str(exc)
            except httpx.TransportError as exc:
                problem = _describe_transport_error(exc)
            failures = 0 if self.cursor > delivered_before else failures + 1
            limit = self._policy.give_up_after
            if limit is not None and failures >= limit:
                raise ServerUnreachable(
                    f"lost the event stream from {self._http.base_url} and could not resume "
                    f"it after {failures} attempts (last problem: {problem})"
                )
            delay = self._policy.delay(failures + 1)
            self.reconnects += 1
            if self._on_reconnect is not None:
                self._on_reconnect(self.reconnects, delay, problem)
            await asyncio.sleep(delay)

    async def _end_confirmed(self) -> bool:
        if self._execution_id is None or self._confirm_end is None:
            return False
        try:
            return await self._confirm_end()
        except ServerUnreachable:
            return False

    async def _connect_once(self) -> AsyncGenerator[StreamEvent, None]:
        params = {"execution_id": self._execution_id} if self._execution_id else None
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
            "Last-Event-ID": str(self.cursor),
        }
        timeout = httpx.Timeout(10.0, read=self._policy.read_timeout)
        async with self._http.stream(
            "GET", self._path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code in _RETRYABLE_STATUS:
                raise _Retryable(f"the server answered HTTP {response.status_code}")
            if response.status_code >= 400:
                await response.aread()
                if self._raise_for_answer is not None:
                    await self._raise_for_answer(response)
                raise ApiError(response.status_code, "http_error", "the event stream was refused")
            try:
                async for sse in EventSource(response).aiter_sse():
                    event = self._accept(sse.id, sse.event, sse.data)
                    if event is not None:
                        yield event
            except SSEError as exc:
                raise _Retryable(f"not an event stream: {exc}") from None

    def _accept(self, raw_id: str, event_type: str, data: str) -> StreamEvent | None:
        # httpx-sse dispatches an empty event after a comment once an id was seen (the id is
        # sticky per the SSE spec); such frames and replays at or below the cursor are dropped.
        if not event_type or not raw_id.isdigit():
            return None
        event_id = int(raw_id)
        if event_id <= self.cursor:
            return None
        self.cursor = event_id
        return StreamEvent.from_sse(event_id, event_type, data, self._execution_id)


def _describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "no data within the read timeout"
    return f"connection broken ({type(exc).__name__})"
