"""`chiron sessions` lists what the server holds."""

from __future__ import annotations

import pytest

from tests.cli.conftest import RunCli
from tests.conftest import RunningServer
from tests.helpers import create_session

pytestmark = pytest.mark.slow


async def test_lists_sessions_newest_first_and_filters_by_status(
    server: RunningServer, run_cli: RunCli
) -> None:
    await create_session(server.client, "cli:older")
    await create_session(server.client, "api:newer")
    result = await run_cli("sessions")
    assert result.exit_code == 0, result.output
    assert "THREAD KEY" in result.stdout
    assert result.stdout.index("api:newer") < result.stdout.index("cli:older")
    assert "idle" in result.stdout and "shell" in result.stdout
    limited = await run_cli("sessions", "--limit", "1")
    assert "api:newer" in limited.stdout and "cli:older" not in limited.stdout
    assert "raise --limit" in limited.stderr
    executing = await run_cli("sessions", "--status", "executing")
    assert executing.exit_code == 0 and "no sessions with status executing" in executing.stderr
