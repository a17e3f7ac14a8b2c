"""The SSE follower resumes by itself after every kind of drop, losing and repeating nothing.

A tiny local SSE server stands in for Chiron: it serves events 1..N in the API's frame format,
honours `Last-Event-ID`, and ends each connection after K events in a chosen way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chiron.cli.client import ChironClient, thread_path
from chiron.cli.connection import Connection
from chiron.cli.errors import AuthRejected, ServerUnreachable
from chiron.cli.event_stream import EventFollower, ReconnectPolicy, StreamEvent
from tests.conftest import free_port

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, give_up_after=5, read_timeout=5.0)
THREAD = "cli:stream"
PATH = thread_path(THREAD, "/events")

Ending = Literal["clean", "abort", "half_frame"]


def frame(event_id: int, event_type: str, data: str) -> str:
    return f"id: {event_id}\nevent: {event_type}\ndata: {data}\n\n"


@dataclass
class FakeEventServer:
    """Serves events 1..total, up to `per_connection` past the client's cursor, then ends."""

    total: int
    per_connection: int
    ending: Ending = "clean"
    terminal_last: bool = False
    honour_cursor: bool = True
    status: int = 200
    cursors: list[int] = field(default_factory=list)
    base_url: str = ""

    def event(self, event_id: int) -> tuple[str, str]:
        if self.terminal_last and event_id == self.total:
            return "session.execution_completed", json.dumps({"execution_id": "exe_1"})
        line = json.dumps({"method": "item/commandExecution/outputDelta", "n": event_id})
        return "session.output.line", line

    async def events(self, request: Request) -> Response:
        if self.status != 200:
            body = {"ok": False, "error": "invalid bearer token", "code": "unauthorized"}
            return JSONResponse(body, status_code=self.status)
        cursor = int(request.headers.get("last-event-id") or 0)
        self.cursors.append(cursor)
        start = cursor + 1 if self.honour_cursor else 1
        last = cursor + self.per_connection
        return StreamingResponse(self._frames(start, last), media_type="text/event-stream")

    async def _frames(self, start: int, last: int) -> AsyncIterator[str]:
        yield ": stream open\n\n"
        for event_id in range(start, self.total + 1):
            if event_id > last:
                if self.ending == "half_frame":
                    yield frame(event_id, *self.event(event_id))[:12]
                if self.ending in ("abort", "half_frame"):
                    raise ConnectionAbortedError("the test server drops the connection")
                return
            yield frame(event_id, *self.event(event_id))
            await asyncio.sleep(0)
        if not self.terminal_last:
            # A session stream stays open once caught up, like the real one.
            while True:
                await asyncio.sleep(0.05)
                yield ": keep-alive\n\n"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FakeEventServer], Awaitable[FakeEventServer]]]:
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(fake: FakeEventServer) -> FakeEventServer:
        port = free_port()
        app = Starlette(routes=[Route("/api/session/{key:path}/events", fake.events)])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="critical", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(), name="test-sse-server")
        running.append((server, task))
        while not server.started:
            await asyncio.sleep(0.01)
        fake.base_url = f"http://127.0.0.1:{port}"
        return fake

    yield start
    for server, task in running:
        server.should_exit = True
        await task


async def collect(follower: EventFollower, limit: int | None = None) -> list[StreamEvent]:
    received: list[StreamEvent] = []
    async with aclosing(follower.events()) as events:
        async for event in events:
            received.append(event)
            if limit is not None and len(received) == limit:
                break
    return received


@pytest.mark.parametrize("ending", ["clean", "abort", "half_frame"])
async def test_resumes_after_each_drop_and_delivers_every_event_once_in_order(
    serve: Callable[[FakeEventServer], Awaitable[FakeEventServer]], ending: Ending
) -> None:
    fake = await serve(FakeEventServer(total=25, per_connection=4, ending=ending))
    reconnects: list[str] = []
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        follower = EventFollower(
            http, PATH, policy=FAST, on_reconnect=lambda n, d, why: reconnects.append(why)
        )
        events = await asyncio.wait_for(collect(follower, limit=25), timeout=20)
    assert [e.event_id for e in events] == list(range(1, 26))
    assert [json.loads(e.payload)["n"] for e in events] == list(range(1, 26))
    assert fake.cursors == [0, 4, 8, 12, 16, 20, 24]
    assert follower.reconnects == len(reconnects) == 6
    if ending == "clean":
        assert set(reconnects) == {"the server closed the stream"}
    else:
        assert all("connection broken" in why for why in reconnects)


async def test_replayed_events_at_or_below_the_cursor_are_dropped(
    serve: Callable[[FakeEventServer], Awaitable[FakeEventServer]],
) -> None:
    # A server (or proxy cache) that ignores Last-Event-ID and replays from the start.
    fake = await serve(FakeEventServer(total=9, per_connection=4, honour_cursor=False))
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        follower = EventFollower(http, PATH, policy=FAST)
        events = await asyncio.wait_for(collect(follower, limit=9), timeout=20)
    assert [e.event_id for e in events] == list(range(1, 10))


async def test_execution_stream_ends_after_its_terminal_event(
    serve: Callable[[FakeEventServer], Awaitable[FakeEventServer]],
) -> None:
    fake = await serve(FakeEventServer(total=10, per_connection=3, terminal_last=True))
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        follower = EventFollower(http, PATH, execution_id="exe_1", policy=FAST)
        events = await asyncio.wait_for(collect(follower), timeout=20)
    assert [e.event_id for e in events] == list(range(1, 11))
    assert events[-1].is_terminal and events[-1].execution_id == "exe_1"
    assert follower.finished and follower.reconnects == 3


async def test_execution_stream_already_past_its_end_is_confirmed_not_retried(
    serve: Callable[[FakeEventServer], Awaitable[FakeEventServer]],
) -> None:
    fake = await serve(FakeEventServer(total=5, per_connection=5, terminal_last=True))
    checks: list[bool] = []

    async def finished() -> bool:
        checks.append(True)
        return True

    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        follower = EventFollower(
            http, PATH, after=5, execution_id="exe_1", policy=FAST, confirm_end=finished
        )
        events = await asyncio.wait_for(collect(follower), timeout=20)
    assert events == [] and follower.finished
    assert fake.cursors == [5] and checks == [True]


async def test_gives_up_after_bounded_attempts_when_nothing_answers() -> None:
    reconnects: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}") as http:
        follower = EventFollower(
            http,
            PATH,
            policy=ReconnectPolicy(initial_delay=0.01, max_delay=0.02, give_up_after=3),
            on_reconnect=lambda n, delay, why: reconnects.append(delay),
        )
        with pytest.raises(ServerUnreachable, match="after 3 attempts"):
            await collect(follower)
    assert len(reconnects) == 2 and all(delay <= 0.02 for delay in reconnects)


def test_backoff_grows_and_stays_bounded() -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=5.0)
    assert all(0.05 <= policy.delay(1) <= 0.1 for _ in range(50))
    assert all(2.5 <= policy.delay(attempt) <= 5.0 for attempt in range(7, 60))


async def test_rejected_token_fails_at_once_with_a_clear_error(
    serve: Callable[[FakeEventServer], Awaitable[FakeEventServer]],
) -> None:
    fake = await serve(FakeEventServer(total=1, per_connection=1, status=401))
    connection = Connection(fake.base_url, "wrong", "CHIRON_API_KEY")
    async with ChironClient(connection) as client:
        follower = client.follow_events(THREAD, policy=FAST)
        with pytest.raises(AuthRejected, match="rejected the API key from CHIRON_API_KEY"):
            await collect(follower)
    assert follower.reconnects == 0
