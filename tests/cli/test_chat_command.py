"""`chiron chat` against a real server: live output, exit codes, the REPL, clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chiron.cli.main import app
from tests.cli.conftest import RunCli, cli_env
from tests.conftest import RunningServer, free_port
from tests.helpers import poll_events

STREAMING = "for i in 1 2 3; do echo line-$i; sleep 0.2; done"


@pytest.mark.slow
async def test_one_shot_streams_output_and_exits_0(server: RunningServer, run_cli: RunCli) -> None:
    result = await run_cli("chat", "--thread", "cli:one-shot", STREAMING)
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.index("line-1")
        < result.stdout.index("line-2")
        < result.stdout.index("line-3")
    )
    assert result.stdout.count("line-3") == 1
    assert "thread cli:one-shot" in result.stderr and "✓ completed" in result.stderr
    types = [e["event_type"] for e in await poll_events(server.client, "cli:one-shot", wait=0)]
    assert types.count("session.execution_completed") == 1


@pytest.mark.slow
async def test_interrupted_turn_exits_1_and_says_cancelled(
    server: RunningServer, run_cli: RunCli
) -> None:
    chat = asyncio.ensure_future(run_cli("chat", "--thread", "cli:stopped", "echo go; sleep 30"))
    for _ in range(300):
        session = await server.client.get("/api/session/cli:stopped")
        if session.status_code == 200 and session.json()["session"]["status"] == "executing":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    answer = await server.client.post("/api/session/cli:stopped/interrupt", json={})
    assert answer.json()["interrupted"] is True
    result = await asyncio.wait_for(chat, timeout=30)
    assert result.exit_code == 1, result.output
    assert "go" in result.stdout and "■ cancelled" in result.stderr


@pytest.mark.slow
async def test_repl_runs_each_line_in_the_same_thread_until_exit(run_cli: RunCli) -> None:
    result = await run_cli(
        "chat", "--thread", "cli:repl", input="echo kept > note\ncat note\n/exit\n"
    )
    assert result.exit_code == 0, result.output
    assert "kept" in result.stdout
    assert result.stderr.count("✓ completed") == 2


@pytest.mark.slow
async def test_new_refuses_an_existing_thread(run_cli: RunCli) -> None:
    assert (await run_cli("chat", "--thread", "cli:taken", "true")).exit_code == 0
    result = await run_cli("chat", "--new", "--thread", "cli:taken", "true")
    assert result.exit_code == 1
    assert "thread cli:taken already exists" in result.stderr


@pytest.mark.slow
async def test_wrong_token_is_one_clear_line_and_exit_1(run_cli: RunCli) -> None:
    result = await run_cli("chat", "echo hi", token="not-the-key")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "rejected the API key from CHIRON_API_KEY" in result.stderr
    assert "Traceback" not in result.output and "not-the-key" not in result.output


def test_unreachable_server_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["chat", "echo hi"], env=cli_env(url, tmp_path, "k"))
    assert result.exit_code == 1
    assert f"cannot reach the Chiron server at {url}" in result.stderr
