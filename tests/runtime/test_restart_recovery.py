"""Crash recovery: kill -9 of the API server mid-turn loses, duplicates and reorders nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, free_port
from tests.helpers import (
    create_session,
    execute,
    get_execution,
    output_deltas,
    poll_events,
    wait_terminal,
)

pytestmark = pytest.mark.slow

SLOW_COUNT = (
    'for i in $(seq 1 3000); do echo "n-$i"; if [ $((i % 100)) = 0 ]; then sleep 0.1; fi; done'
)


class ServerProcess:
    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "CHIRON_HOME": str(home),
            "CHIRON_DATABASE_URL": database_url,
            "CHIRON_ADMIN_API_KEY": ADMIN_KEY,
            "CHIRON_LISTEN": f"127.0.0.1:{self.port}",
        }
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "chiron.api.app:app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient() as probe, asyncio.timeout(60):
            while True:
                try:
                    if (await probe.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.process.poll() is None, "server died during start-up"
                await asyncio.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


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
