"""Runs the `chiron` Typer app in-process against a real server, the way a person would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from chiron.cli.main import app
from tests.conftest import ADMIN_KEY, RunningServer

RunCli = Callable[..., Awaitable[Result]]


def cli_env(base_url: str, home: Path, token: str | None = ADMIN_KEY) -> dict[str, str | None]:
    return {
        "CHIRON_URL": base_url,
        "CHIRON_API_KEY": token,
        "CHIRON_HOME": str(home),
        "CHIRON_ADMIN_API_KEY": None,
        "CHIRON_LISTEN": None,
        "CHIRON_DATABASE_URL": None,
    }


@pytest.fixture
def run_cli(server: RunningServer) -> RunCli:
    """`await run_cli("chat", "echo hi")` → the Result; runs in a thread beside the server."""

    async def run(*args: str, token: str | None = ADMIN_KEY, input: str | None = None) -> Result:
        env = cli_env(server.base_url, server.settings.home, token)
        # The server lives on this test's event loop; the command runs its own in a thread.
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), input=input, env=env)

    return run
