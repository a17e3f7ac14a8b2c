"""Output handling: the line cap with a truncation event, and redaction of secrets."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RunningServer
from tests.helpers import create_session, execute, get_execution, wait_terminal

pytestmark = pytest.mark.slow


async def test_line_over_cap_is_truncated_and_turn_goes_on(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:long")
    command = "python3 -c \"print('x' * 3_000_000)\"; echo after-the-long-line"
    execution_id = await execute(client, "api:long", command)
    events = await wait_terminal(client, "api:long", execution_id)
    truncated = [e for e in events if e["event_type"] == "session.output.truncated"]
    assert len(truncated) == 1
    info = truncated[0]["payload"]
    cap = server.settings.output_line_cap_bytes
    assert info["original_bytes"] > 3_000_000 and info["kept_bytes"] == cap
    line_event = next(e for e in events if e["event_id"] == info["line_event_id"])
    assert len(line_event["payload"].encode()) == cap
    assert events[-1]["event_type"] == "session.execution_completed"
    assert (
        "after-the-long-line"
        in (await get_execution(client, "api:long", execution_id))["result_text"]
    )


SECRETS = [
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-1234567890-0987654321-abcdefghij",
]


async def test_tokens_in_output_are_stored_redacted(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:redact")
    command = (
        "; ".join(f"echo 'token {s}'" for s in SECRETS)
        + "; echo 'Authorization: Bearer abcdef123456789'"
    )
    execution_id = await execute(client, "api:redact", command)
    events = await wait_terminal(client, "api:redact", execution_id)
    dumped = json.dumps(events)
    for secret in [*SECRETS, "abcdef123456789"]:
        assert secret not in dumped
    assert "[REDACTED]" in dumped
    execution = await get_execution(client, "api:redact", execution_id)
    assert all(secret not in (execution["result_text"] or "") for secret in SECRETS)
    assert "Bearer [REDACTED]" in execution["result_text"]
