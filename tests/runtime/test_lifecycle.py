"""Start-up and shutdown of the control plane: readiness, orphans, drain, lease release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chiron.api.app import create_app
from chiron.api.embedded import serve_in_background
from chiron.sandbox.backend import ResourceLimits, SandboxSpec, SandboxState
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.store import execution_queries
from chiron.store.engine import Store
from tests.conftest import ADMIN_KEY, make_settings, stop_leftover_sandboxes
from tests.helpers import create_session, execute, get_execution, poll_events, wait_terminal

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _no_leftover_sandboxes(tmp_path: Path) -> AsyncIterator[None]:
    yield
    await stop_leftover_sandboxes(tmp_path / "home")


LIMITS = ResourceLimits(memory_bytes=1 << 30, cpu_seconds=60, max_processes=64, file_bytes=1 << 26)


def _client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    )


async def test_readyz_is_503_until_the_control_plane_started(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "home", f"sqlite+aiosqlite:///{tmp_path}/db"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert (await client.get("/healthz")).status_code == 200


async def test_orphan_sandboxes_are_stopped_at_start_up(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "home", database_url)
    backend = LocalSandboxBackend(settings)
    orphan = await backend.create(
        SandboxSpec(sandbox_id="sbx_orphan1", harness="shell", limits=LIMITS)
    )
    assert await backend.status(orphan) is SandboxState.RUNNING
    async with serve_in_background(settings):
        assert [info.sandbox_id for info in await backend.list()] == []
        assert await backend.status(orphan) is SandboxState.STOPPED


async def test_shutdown_drains_running_turns(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "home", database_url)
    async with serve_in_background(settings), _client(f"http://{settings.listen}") as client:
        await create_session(client, "api:drain")
        execution_id = await execute(client, "api:drain", "sleep 1; echo drained")
        await asyncio.sleep(0.3)
    store = Store(database_url)
    async with store.read() as conn:
        execution = await execution_queries.get_execution(conn, execution_id)
    await store.dispose()
    assert execution is not None and execution.status == "completed"
    assert execution.result_text is not None and "drained" in execution.result_text


async def test_turn_longer_than_drain_is_released_and_adopted_by_next_server(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "home", database_url, shutdown_drain_seconds=0.5)
    async with serve_in_background(settings), _client(f"http://{settings.listen}") as client:
        await create_session(client, "api:handover")
        execution_id = await execute(client, "api:handover", "sleep 2; echo handed-over")
        await asyncio.sleep(0.5)
    store = Store(database_url)
    async with store.read() as conn:
        execution = await execution_queries.get_execution(conn, execution_id)
    await store.dispose()
    assert execution is not None and execution.status == "running"
    assert execution.lease_owner is None, "shutdown must release the lease"

    settings = make_settings(tmp_path / "home", database_url)
    async with serve_in_background(settings), _client(f"http://{settings.listen}") as client:
        events = await wait_terminal(client, "api:handover", execution_id)
        assert events[-1]["event_type"] == "session.execution_completed"
        assert (
            "handed-over"
            in (await get_execution(client, "api:handover", execution_id))["result_text"]
        )
        metrics = (await client.get("/metrics")).text
        assert 'chiron_executions_finished_total{status="completed"} 1.0' in metrics
        await client.delete("/api/session/api:handover")


async def test_isolation_off_is_announced_in_every_session(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "home", f"sqlite+aiosqlite:///{tmp_path}/db", sandbox_isolation="none"
    )
    async with serve_in_background(settings), _client(f"http://{settings.listen}") as client:
        await create_session(client, "api:open")
        first = (await poll_events(client, "api:open", wait=0))[0]
        assert first["event_type"] == "session.isolation_disabled"
        execution_id = await execute(client, "api:open", "echo unboxed")
        events = await wait_terminal(client, "api:open", execution_id)
        ready = next(e for e in events if e["event_type"] == "session.sandbox_ready")
        assert ready["payload"]["isolation"] == "none"
        await client.delete("/api/session/api:open")
