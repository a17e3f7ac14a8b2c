"""What the benchmarks share: a real server on a temporary home, percentiles, raw baselines."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from chiron.settings import Settings

ADMIN_KEY = "bench-admin-key-" + secrets.token_hex(8)
PG_ADMIN_DSN = os.environ.get(
    "CHIRON_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RAW_BWRAP = [
    "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5) * 1000:7.2f} ms   p99 {percentile(values, 0.99) * 1000:7.2f} ms"
        f"   mean {statistics.fmean(values) * 1000:7.2f} ms   (n={len(values)})"
    )


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall time of a command started `runs` times (the raw baseline of sandbox start-up)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return samples


def user_line(text: str) -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}})


@dataclass
class BenchServer:
    base_url: str
    client: httpx.AsyncClient
    settings: Settings
    database_url: str
    pid: int


@asynccontextmanager
async def temporary_postgres_database() -> AsyncIterator[str]:
    name = f"chiron_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def bench_server(engine: str = "sqlite", **overrides: Any) -> AsyncIterator[BenchServer]:
    with tempfile.TemporaryDirectory(prefix="chiron-bench-") as tmp:
        home = Path(tmp) / "home"
        if engine == "sqlite":
            async with _serve(home, f"sqlite+aiosqlite:///{home / 'chiron.db'}", overrides) as s:
                yield s
        else:
            async with (
                temporary_postgres_database() as url,
                _serve(home, url, overrides) as s,
            ):
                yield s


@asynccontextmanager
async def _serve(
    home: Path, database_url: str, overrides: dict[str, Any]
) -> AsyncIterator[BenchServer]:
    """The API server in its own process, as deployed: clients here never steal its CPU."""
    port = free_port()
    env = {
        **os.environ,
        "CHIRON_HOME": str(home),
        "CHIRON_DATABASE_URL": database_url,
        "CHIRON_ADMIN_API_KEY": ADMIN_KEY,
        "CHIRON_LISTEN": f"127.0.0.1:{port}",
        **{f"CHIRON_{name.upper()}": str(value) for name, value in overrides.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "chiron.api.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=120,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        ) as client:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if process.poll() is not None:
                        raise RuntimeError("the API server exited during start-up")
                    await asyncio.sleep(0.1)
            settings = Settings(home=home, database_url=database_url, listen=f"127.0.0.1:{port}")
            try:
                yield BenchServer(base_url, client, settings, database_url, process.pid)
            finally:
                await _archive_all(client)
    finally:
        process.terminate()
        process.wait(30)


async def _archive_all(client: httpx.AsyncClient) -> None:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/sessions", params=params)).json()
        await asyncio.gather(
            *(
                client.delete(f"/api/session/{s['thread_key']}")
                for s in page["sessions"]
                if s["status"] != "archived"
            )
        )
        cursor = page["next_cursor"]
        if not cursor:
            return
