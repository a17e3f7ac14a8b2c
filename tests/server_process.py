"""A real API server process (uvicorn, as deployed) for tests that kill or pair servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, free_port


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
