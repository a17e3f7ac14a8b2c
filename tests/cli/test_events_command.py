"""`chiron events`: the stored log, as text or JSON, and a tail that ends with its execution."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import RunCli
from tests.conftest import RunningServer
from tests.helpers import create_session, execute, poll_events, wait_terminal

pytestmark = pytest.mark.slow


async def test_prints_every_event_and_follows_one_execution_to_its_end(
    server: RunningServer, run_cli: RunCli
) -> None:
    await create_session(server.client, "cli:log")
    execution_id = await execute(server.client, "cli:log", "echo logged")
    stored = await wait_terminal(server.client, "cli:log", execution_id)

    as_json = await run_cli("events", "cli:log", "--json")
    assert as_json.exit_code == 0, as_json.output
    printed = [json.loads(line) for line in as_json.stdout.splitlines()]
    all_events = await poll_events(server.client, "cli:log", wait=0)
    assert [e["event_id"] for e in printed] == [e["event_id"] for e in all_events]
    assert printed[-1]["event_type"] == "session.execution_completed"

    text = await run_cli("events", "cli:log", "--after", "3")
    assert text.exit_code == 0
    ids = [int(line.split()[0]) for line in text.stdout.splitlines()]
    assert ids == [e["event_id"] for e in all_events if e["event_id"] > 3]

    followed = await run_cli("events", "cli:log", "--follow", "--execution", execution_id, "--json")
    assert followed.exit_code == 0, followed.output
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [e["event_id"] for e in events] == [e["event_id"] for e in stored]
    assert {e["execution_id"] for e in events} == {execution_id}
    assert any("logged" in str(e["payload"]) for e in events)
