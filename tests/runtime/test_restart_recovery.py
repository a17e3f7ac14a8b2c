"""Crash recovery: kill -9 of the API server mid-turn loses, duplicates and reorders nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.helpers import (
    create_session,
    execute,
    get_execution,
    output_deltas,
    poll_events,
    user_line,
    wait_terminal,
)
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

SLOW_COUNT = (
    'for i in $(seq 1 3000); do echo "n-$i"; if [ $((i % 100)) = 0 ]; then sleep 0.1; fi; done'
)


@pytest.fixture
async def client_for(tmp_path: Path) -> AsyncIterator[object]:
    clients: list[httpx.AsyncClient] = []

    def make(url: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_kill_9_mid_turn_then_restart_finishes_turn_exactly_once(
    tmp_path: Path, database_url: str, client_for: object
) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home, database_url)
    await first.start()
    second: ServerProcess | None = None
    try:
        client = client_for(first.url)  # type: ignore[operator]
        await create_session(client, "api:crash")
        execution_id = await execute(client, "api:crash", SLOW_COUNT)
        async with asyncio.timeout(30):
            while len(output_deltas(await poll_events(client, "api:crash", wait=1))) < 300:
                await asyncio.sleep(0.05)
        first.kill9()

        second = ServerProcess(home, database_url)
        await second.start()
        client = client_for(second.url)  # type: ignore[operator]
        events = await wait_terminal(client, "api:crash", execution_id, timeout=90)
        assert output_deltas(events) == [f"n-{i}" for i in range(1, 3001)]
        ids = [e["event_id"] for e in events]
        assert ids == sorted(set(ids))
        terminal = [
            e
            for e in events
            if e["event_type"].startswith("session.execution_")
            and e["event_type"]
            not in (
                "session.execution_queued",
                "session.execution_started",
                "session.execution_adopted",
            )
        ]
        assert [e["event_type"] for e in terminal] == ["session.execution_completed"]
        adopted = [e for e in events if e["event_type"] == "session.execution_adopted"]
        assert adopted and adopted[0]["payload"]["mode"] == "live_attach"
        execution = await get_execution(client, "api:crash", execution_id)
        assert execution["status"] == "completed"
        # A later turn in the same session reuses the re-adopted sandbox.
        again = await execute(client, "api:crash", "echo after")
        later = await wait_terminal(client, "api:crash", again)
        ready = [e for e in later if e["event_type"] == "session.sandbox_ready"]
        assert ready[0]["payload"]["source"] == "reused"
    finally:
        first.terminate()
        if second is not None:
            second.terminate()
        from tests.conftest import stop_leftover_sandboxes

        await stop_leftover_sandboxes(home)


async def _forge_execution(
    database_url: str, thread_key: str, execution_id: str, command: str, status: str
) -> None:
    """A row as a crashed server leaves it: claimed by a process that no longer exists."""
    import socket

    from chiron.store import execution_queries
    from chiron.store.engine import Store
    from chiron.store.types import utcnow

    store = Store(database_url)
    async with store.write() as conn:
        await execution_queries.insert_queued(
            conn,
            execution_id=execution_id,
            thread_key=thread_key,
            idempotency_key=None,
            request={"input_lines": [user_line(command)], "metadata": {}},
        )
        if status == "running":
            await execution_queries.update_execution(
                conn,
                execution_id,
                status="running",
                started_at=utcnow(),
                lease_owner=f"{socket.gethostname()}:4194999:dead",
                lease_expires_at=utcnow(),
            )
    await store.dispose()


async def test_crash_after_input_reached_sandbox_runs_the_turn_once(
    tmp_path: Path, database_url: str
) -> None:
    from chiron.api.embedded import serve_in_background
    from chiron.sandbox.local_backend import LocalSandboxBackend
    from tests.conftest import make_settings

    home = tmp_path / "home"
    settings = make_settings(home, database_url)
    try:
        async with serve_in_background(settings), _admin_client(settings) as client:
            await create_session(client, "api:window")
            warm = await execute(client, "api:window", "echo warm")
            await wait_terminal(client, "api:window", warm)
            sandbox_id = (await client.get("/api/session/api:window")).json()["session"][
                "sandbox_id"
            ]
        # The crash window: the input reached the harness, the offsets never got stored.
        execution_id = "exe_" + "a" * 32
        command = "echo ran >> /workspace/runs; echo finished"
        await _forge_execution(database_url, "api:window", execution_id, command, "running")
        backend = LocalSandboxBackend(settings)
        await backend.write_input(sandbox_id, [user_line(command)], token=execution_id)

        settings = make_settings(home, database_url, recovery_scan_seconds=0.5)
        async with serve_in_background(settings), _admin_client(settings) as client:
            events = await wait_terminal(client, "api:window", execution_id)
            assert output_deltas(events) == ["finished"]
            assert events[-1]["event_type"] == "session.execution_completed"
            runs = settings.sandboxes_dir / sandbox_id / "workspace" / "runs"
            assert runs.read_text() == "ran\n", "the turn ran more than once"

            # A queued row left behind is replayed through the normal claim.
            queued_id = "exe_" + "b" * 32
            await _forge_execution(database_url, "api:window", queued_id, "echo late", "queued")
            events = await wait_terminal(client, "api:window", queued_id)
            adopted = [e for e in events if e["event_type"] == "session.execution_adopted"]
            assert adopted[0]["payload"]["mode"] == "queued_request"
            assert output_deltas(events) == ["late"]
    finally:
        from tests.conftest import stop_leftover_sandboxes

        await stop_leftover_sandboxes(home)


def _admin_client(settings: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://{settings.listen}",  # type: ignore[attr-defined]
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=60,
    )
