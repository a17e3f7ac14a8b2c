"""A session's first sandbox boots while its execution is queued: used once, never leaked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chiron.api.embedded import serve_in_background
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from chiron.store import execution_queries
from tests.conftest import RunningServer, make_settings
from tests.helpers import create_session, execute, output_deltas, user_line, wait_terminal

pytestmark = pytest.mark.slow


async def running_sandboxes(settings: Settings) -> list[str]:
    return sorted(info.sandbox_id for info in await LocalSandboxBackend(settings).list())


async def settles_to(settings: Settings, expected: list[str], timeout: float = 10.0) -> list[str]:
    """The sandboxes still there once background stops are done (or the last seen list)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (seen := await running_sandboxes(settings)) != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return seen


async def claimed_by_another_replica(
    server: RunningServer, thread_key: str, execution_id: str
) -> None:
    """An execution queued here and claimed by another server process."""
    async with server.plane.store.write() as conn:
        await execution_queries.insert_queued(
            conn,
            execution_id=execution_id,
            thread_key=thread_key,
            idempotency_key=None,
            request={"input_lines": [user_line("echo elsewhere")]},
        )
        claimed = await execution_queries.claim(
            conn, execution_id, owner="other-host:1:x", lease_seconds=45
        )
    assert claimed is not None


async def test_first_turn_runs_in_the_one_sandbox_started_for_it(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "early:first")
    execution_id = await execute(client, "early:first", "echo first-turn")
    events = await wait_terminal(client, "early:first", execution_id)
    assert events[-1]["event_type"] == "session.execution_completed"
    assert output_deltas(events) == ["first-turn"]
    ready = [e["payload"] for e in events if e["event_type"] == "session.sandbox_ready"]
    assert [r["source"] for r in ready] == ["cold_create"]
    session = (await client.get("/api/session/early:first")).json()["session"]
    assert session["sandbox_id"] == ready[0]["sandbox_id"]
    assert await settles_to(server.settings, [ready[0]["sandbox_id"]]) == [ready[0]["sandbox_id"]]

    # The next turn reuses it and starts nothing new.
    second = await execute(client, "early:first", "echo second-turn")
    events = await wait_terminal(client, "early:first", second)
    ready = [e["payload"] for e in events if e["event_type"] == "session.sandbox_ready"]
    assert [r["source"] for r in ready] == ["reused"]
    assert await running_sandboxes(server.settings) == [session["sandbox_id"]]


async def test_refused_concurrent_executes_leave_no_extra_sandbox(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "early:race")
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/session/early:race/execute",
                json={"input_lines": [user_line("echo only-once")]},
            )
            for _ in range(20)
        )
    )
    accepted = [a.json()["execution_id"] for a in answers if a.status_code == 200]
    assert len(accepted) == 1
    assert sorted({a.status_code for a in answers}) == [200, 409]
    events = await wait_terminal(client, "early:race", accepted[0])
    assert output_deltas(events) == ["only-once"]
    session = (await client.get("/api/session/early:race")).json()["session"]
    expected = [session["sandbox_id"]]
    assert await settles_to(server.settings, expected) == expected


async def test_an_execution_claimed_elsewhere_stops_the_early_sandbox(
    server: RunningServer,
) -> None:
    client = server.client
    await create_session(client, "early:elsewhere")
    plane = server.plane
    session = await plane.service.get_session("early:elsewhere")
    assert plane.allocator.start_early(session)
    assert not plane.allocator.start_early(session)  # one per session
    # Another replica queued and claimed the execution this sandbox was started for.
    await claimed_by_another_replica(server, "early:elsewhere", "exe_elsewhere")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(await running_sandboxes(server.settings)) != 1:
        assert loop.time() < deadline, "the early sandbox never started"
        await asyncio.sleep(0.02)
    plane.driver.kick("exe_elsewhere")
    assert await settles_to(server.settings, []) == []


async def test_archiving_stops_a_sandbox_started_early(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "early:archive")
    plane = server.plane
    assert plane.allocator.start_early(await plane.service.get_session("early:archive"))
    assert (await client.delete("/api/session/early:archive")).status_code == 200
    assert await settles_to(server.settings, []) == []


async def test_shutdown_stops_sandboxes_started_early(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "home", database_url)
    async with serve_in_background(settings) as app:
        plane = app.state.control_plane
        await plane.service.create_session("early:shutdown", harness_type="shell")
        assert plane.allocator.start_early(await plane.service.get_session("early:shutdown"))
    assert await running_sandboxes(settings) == []


async def test_a_refused_execute_stops_the_sandbox_it_started(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "early:refused")
    # Another replica is running an execution here and has not stored its sandbox yet.
    await claimed_by_another_replica(server, "early:refused", "exe_running_elsewhere")
    answer = await client.post(
        "/api/session/early:refused/execute", json={"input_lines": [user_line("echo refused")]}
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "execution_active"
    await server.plane.tasks.wait(10, prefix="sandbox-early")  # its start, then its stop
    assert await running_sandboxes(server.settings) == []
