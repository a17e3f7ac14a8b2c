"""Two API server processes on one database and one host: one system to their clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, stop_leftover_sandboxes
from tests.helpers import create_session, execute, output_deltas, wait_terminal
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

SESSIONS = 6


@pytest.fixture
async def replicas(tmp_path: Path, database_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    home = tmp_path / "home"
    servers = [ServerProcess(home, database_url), ServerProcess(home, database_url)]
    clients: list[httpx.AsyncClient] = []
    try:
        for server in servers:
            await server.start()
            clients.append(
                httpx.AsyncClient(
                    base_url=server.url,
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                    timeout=60,
                )
            )
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        for server in servers:
            server.terminate()
        await stop_leftover_sandboxes(home)


def lifecycle(events: list[dict[str, object]]) -> list[object]:
    return [
        e["event_type"]
        for e in events
        if str(e["event_type"]).startswith("session.execution_")
        or e["event_type"] == "session.sandbox_ready"
    ]


async def test_turns_started_on_either_replica_are_followed_from_the_other(
    replicas: list[httpx.AsyncClient],
) -> None:
    first, second = replicas
    keys = [f"replica:{index}" for index in range(SESSIONS)]
    for index, key in enumerate(keys):
        await create_session(replicas[index % 2], key)

    # All at once, each executed through one replica and followed through the other.
    execution_ids = await asyncio.gather(
        *(execute(replicas[i % 2], key, f"echo turn-{i}") for i, key in enumerate(keys))
    )
    followed = await asyncio.gather(
        *(
            wait_terminal(replicas[(i + 1) % 2], key, execution_id)
            for i, (key, execution_id) in enumerate(zip(keys, execution_ids, strict=True))
        )
    )
    for index, events in enumerate(followed):
        assert output_deltas(events) == [f"turn-{index}"]
        ids = [e["event_id"] for e in events]
        assert ids == sorted(set(ids))
        assert lifecycle(events) == [
            "session.execution_queued",
            "session.execution_started",
            "session.sandbox_ready",
            "session.execution_completed",
        ]

    # The next turn goes through the other replica, which drives it in the sandbox the first
    # one made (same host, same sandbox directory).
    again = await execute(second, keys[0], "echo again")
    events = await wait_terminal(first, keys[0], again)
    assert output_deltas(events) == ["again"]
    ready = [e["payload"] for e in events if e["event_type"] == "session.sandbox_ready"]
    assert [r["source"] for r in ready] == ["reused"]  # type: ignore[index]
    sessions = (await first.get("/api/sessions", params={"limit": 50})).json()["sessions"]
    assert sorted(s["thread_key"] for s in sessions) == sorted(keys)
