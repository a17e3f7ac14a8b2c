"""Steering, interrupt, pause/resume and idle pause through the HTTP API."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import RunningServer
from tests.helpers import (
    create_session,
    execute,
    get_execution,
    output_deltas,
    poll_events,
    wait_terminal,
)

pytestmark = pytest.mark.slow


async def _wait_for_output(server: RunningServer, thread_key: str, text: str) -> None:
    async with asyncio.timeout(30):
        while text not in output_deltas(await poll_events(server.client, thread_key, wait=1)):
            await asyncio.sleep(0.05)


async def test_user_message_during_a_turn_steers_it(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:steer")
    execution_id = await execute(client, "api:steer", "echo waiting; read answer; echo got-$answer")
    await _wait_for_output(server, "api:steer", "waiting")
    response = await client.post(
        "/api/session/api:steer/messages",
        json={"messages": [{"role": "user", "parts": [{"type": "text", "text": "blue"}]}]},
    )
    assert response.status_code == 200
    events = await wait_terminal(client, "api:steer", execution_id)
    assert "got-blue" in output_deltas(events)
    # The delivery event may land after the turn already ended: look at the whole log.
    session_events = await poll_events(client, "api:steer", wait=0)
    assert "session.steering_delivered" in [e["event_type"] for e in session_events]


async def test_interrupt_cancels_the_running_turn(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:int")
    execution_id = await execute(client, "api:int", "echo begun; sleep 60")
    await _wait_for_output(server, "api:int", "begun")
    answer = await client.post("/api/session/api:int/interrupt", json={"reason": "user stop"})
    assert answer.json() == {"ok": True, "interrupted": True, "execution_id": execution_id}
    events = await wait_terminal(client, "api:int", execution_id, timeout=20)
    assert events[-1]["event_type"] == "session.execution_cancelled"
    assert (await get_execution(client, "api:int", execution_id))["status"] == "cancelled"
    idle = await client.post("/api/session/api:int/interrupt", json={})
    assert idle.json()["interrupted"] is False


async def test_max_duration_fails_the_run(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:slowpoke")
    execution_id = await execute(client, "api:slowpoke", "sleep 30", max_duration_ms=1500)
    events = await wait_terminal(client, "api:slowpoke", execution_id, timeout=20)
    assert events[-1]["event_type"] == "session.execution_failed"
    assert events[-1]["payload"]["reason"] == "max_duration_exceeded"
    # The harness was told to stop: the next turn runs in the same sandbox at once.
    again = await execute(client, "api:slowpoke", "echo next")
    later = await wait_terminal(client, "api:slowpoke", again, timeout=20)
    assert output_deltas(later) == ["next"]


async def test_pause_freezes_the_sandbox_and_resume_continues(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:freeze")
    # A background counter keeps writing into the workspace after the turn ends.
    start = await execute(
        client,
        "api:freeze",
        # Renamed into place so a reader never catches the file truncated but not yet written.
        "(i=0; while true; do i=$((i+1)); echo $i > /workspace/count.new;"
        " mv /workspace/count.new /workspace/count; sleep 0.05; done) "
        ">/dev/null 2>&1 & echo started",
    )
    await wait_terminal(client, "api:freeze", start)
    session = (await client.get("/api/session/api:freeze")).json()["session"]
    counter = server.settings.sandboxes_dir / session["sandbox_id"] / "workspace" / "count"
    paused = await client.post("/api/session/api:freeze/pause")
    assert paused.json()["changed"] is True
    frozen = counter.read_text()
    await asyncio.sleep(0.5)
    assert counter.read_text() == frozen, "a paused sandbox kept running"
    resumed = await client.post("/api/session/api:freeze/resume")
    assert resumed.json()["changed"] is True
    await asyncio.sleep(0.5)
    assert int(counter.read_text()) > int(frozen)
    types = [e["event_type"] for e in await poll_events(client, "api:freeze", wait=0)]
    assert "session.sandbox_paused" in types and "session.sandbox_resumed" in types


async def test_idle_sandbox_is_paused_then_resumed_by_next_turn(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:idle")
    first = await execute(client, "api:idle", "echo one", idle_timeout_ms=300)
    await wait_terminal(client, "api:idle", first)
    async with asyncio.timeout(15):
        while "session.sandbox_paused" not in [
            e["event_type"] for e in await poll_events(client, "api:idle", wait=1)
        ]:
            await asyncio.sleep(0.1)
    second = await execute(client, "api:idle", "echo two")
    events = await wait_terminal(client, "api:idle", second)
    ready = [e for e in events if e["event_type"] == "session.sandbox_ready"]
    assert ready[0]["payload"]["source"] == "resumed"
    assert output_deltas(events) == ["two"]
