"""Streaming and replay of the event log (DESIGN.md §4), on both databases."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import RunningServer
from tests.helpers import TERMINAL_TYPES, create_session, execute, output_deltas, poll_events

pytestmark = pytest.mark.slow

TEN_THOUSAND_LINES = (
    'for i in $(seq 1 10000); do echo "line-$i"; if [ $((i % 400)) = 0 ]; then sleep 0.02; fi; done'
)


async def _read_some(
    client: httpx.AsyncClient, url: str, last_id: int | None, budget: int
) -> tuple[list[dict[str, object]], bool]:
    """Read up to `budget` events, then drop the connection; True when the stream ended."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    received: list[dict[str, object]] = []
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        async for sse in source.aiter_sse():
            received.append({"event_id": int(sse.id), "event_type": sse.event, "payload": sse.data})
            if sse.event in TERMINAL_TYPES:
                return received, True
            if len(received) >= budget:
                return received, False
    return received, True


async def test_reconnecting_client_gets_every_event_once_in_order(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:stream")
    execution_id = await execute(client, "api:stream", TEN_THOUSAND_LINES)
    url = f"/api/session/api:stream/events?execution_id={execution_id}"
    rng = random.Random(20261126)
    events: list[dict[str, object]] = []
    last_id: int | None = None
    reconnects = 0
    while True:
        page, ended = await _read_some(client, url, last_id, rng.randint(1, 900))
        events.extend(page)
        if page:
            last_id = int(page[-1]["event_id"])  # type: ignore[call-overload]
        if ended:
            break
        reconnects += 1
    assert reconnects >= 10
    ids = [int(e["event_id"]) for e in events]  # type: ignore[call-overload]
    assert ids == sorted(set(ids)), "duplicate or out-of-order events"
    every_event = await _all_execution_events(client, "api:stream", execution_id)
    assert ids == every_event, "the reconnecting client missed events"
    assert output_deltas(events) == [f"line-{i}" for i in range(1, 10001)]  # type: ignore[arg-type]
    assert events[-1]["event_type"] == "session.execution_completed"


async def _all_execution_events(
    client: httpx.AsyncClient, thread_key: str, execution_id: str
) -> list[int]:
    ids: list[int] = []
    cursor = 0
    while True:
        page = await poll_events(
            client, thread_key, after=cursor, execution_id=execution_id, wait=0
        )
        if not page:
            return ids
        ids.extend(e["event_id"] for e in page)
        cursor = page[-1]["event_id"]


async def test_query_cursor_wins_over_last_event_id_header(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:cursor")
    execution_id = await execute(client, "api:cursor", "echo one")
    url = f"/api/session/api:cursor/events?execution_id={execution_id}&after_event_id=2"
    seen: list[int] = []
    async with aconnect_sse(client, "GET", url, headers={"Last-Event-ID": "0"}) as source:
        async for sse in source.aiter_sse():
            seen.append(int(sse.id))
            if sse.event in TERMINAL_TYPES:
                break
    assert seen[0] == 3


async def test_session_stream_tails_live_events_and_json_long_poll_waits(
    server: RunningServer,
) -> None:
    client = server.client
    await create_session(client, "api:tail")
    async with aconnect_sse(client, "GET", "/api/session/api:tail/events") as source:
        execution_id = await execute(client, "api:tail", "echo live")
        types: list[str] = []
        async for sse in source.aiter_sse():
            types.append(sse.event)
            if sse.event in TERMINAL_TYPES:
                break
    assert types[0] == "session.execution_queued"
    assert "session.output.line" in types
    last = await poll_events(client, "api:tail", wait=0)
    cursor = last[-1]["event_id"]
    # Nothing new: the long-poll waits, then returns an empty page.
    assert await poll_events(client, "api:tail", after=cursor, wait=0.3) == []
    assert execution_id


async def test_output_line_payload_is_the_raw_harness_line(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:raw")
    execution_id = await execute(client, "api:raw", "echo raw-check")
    async with aconnect_sse(
        client, "GET", f"/api/session/api:raw/events?execution_id={execution_id}"
    ) as source:
        lines = []
        async for sse in source.aiter_sse():
            if sse.event == "session.output.line":
                lines.append(json.loads(sse.data))
            if sse.event in TERMINAL_TYPES:
                break
    assert any(m.get("method") == "turn/completed" for m in lines)
