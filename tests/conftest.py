"""Fixtures shared by the whole suite: a database on each engine, and a running API server.

Every store-touching test runs twice, on SQLite and on PostgreSQL. PostgreSQL tests get a
fresh database per test, cloned from a migrated template made once per xdist worker, so tests
stay independent and parallel-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chiron.settings import Settings
from chiron.store.engine import Store
from chiron.store.migrate import upgrade_to_head

PG_ADMIN_DSN = os.environ.get("CHIRON_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_KEY = "test-admin-key-" + "x" * 16


def _pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"chiron_tpl_{_worker()}_{os.getpid()}"

    async def make() -> None:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
        await _pg_admin(f'CREATE DATABASE "{name}"')
        store = Store(_pg_url(name))
        await upgrade_to_head(store)
        await store.dispose()

    _run_in_thread(make())
    yield name
    _run_in_thread(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_in_thread(coro: Any) -> None:
    """Session fixtures may be first requested from inside a test's running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chiron.db'}"
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"chiron_t_{secrets.token_hex(6)}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await upgrade_to_head(store)
    yield store
    await store.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    base_url: str
    settings: Settings
    app: Any
    client: httpx.AsyncClient

    @property
    def plane(self) -> Any:
        return self.app.state.control_plane


def make_settings(home: Path, database_url: str, **overrides: Any) -> Settings:
    return Settings(
        home=home,
        database_url=database_url,
        admin_api_key=ADMIN_KEY,
        listen=f"127.0.0.1:{free_port()}",
        **overrides,
    )


@pytest.fixture
async def server_factory(tmp_path: Path, database_url: str) -> AsyncIterator[Any]:
    """Start API servers (real uvicorn on loopback) on this test's database."""
    from chiron.api.embedded import serve_in_background

    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RunningServer:
            settings = make_settings(tmp_path / "home", database_url, **overrides)
            app = await stack.enter_async_context(serve_in_background(settings))
            base_url = f"http://{settings.listen}"
            client = httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=httpx.Timeout(60.0),
            )
            stack.push_async_callback(client.aclose)
            return RunningServer(base_url, settings, app, client)

        yield start
    await stop_leftover_sandboxes(tmp_path / "home")


@pytest.fixture
async def server(server_factory: Any) -> RunningServer:
    result: RunningServer = await server_factory()
    return result


async def stop_leftover_sandboxes(home: Path) -> None:
    """Tests must not leak sandboxes into the machine, whatever they did."""
    from chiron.sandbox.local_backend import LocalSandboxBackend

    if not (home / "sandboxes").exists():
        return
    backend = LocalSandboxBackend(Settings(home=home))
    for info in await backend.list():
        await backend.stop(info.sandbox_id)
