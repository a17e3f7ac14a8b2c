"""`chiron keys`: a created key works within its prefixes; a revoked one is refused."""

from __future__ import annotations

import pytest

from tests.cli.conftest import RunCli
from tests.conftest import RunningServer
from tests.helpers import create_session

pytestmark = pytest.mark.slow


async def test_create_list_use_and_revoke_a_key(server: RunningServer, run_cli: RunCli) -> None:
    await create_session(server.client, "slack:C1:1.2")
    await create_session(server.client, "cli:private")
    created = await run_cli("keys", "create", "bot", "--prefix", "slack:", "--prefix", "api:")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("chiron_key_") and "\n" not in token
    key_id = created.stderr.split("created key ", 1)[1].split()[0]

    listed = await run_cli("keys", "list")
    assert key_id[:8] in listed.stdout and "bot" in listed.stdout and "slack:" in listed.stdout

    scoped = await run_cli("sessions", token=token)
    assert "slack:C1:1.2" in scoped.stdout and "cli:private" not in scoped.stdout
    refused = await run_cli("chat", "--thread", "cli:private", "true", token=token)
    assert refused.exit_code == 1 and "may not do this" in refused.stderr

    assert (await run_cli("keys", "revoke", key_id)).exit_code == 0
    revoked = await run_cli("sessions", token=token)
    assert revoked.exit_code == 1 and "rejected the API key" in revoked.stderr
    again = await run_cli("keys", "revoke", key_id)
    assert again.exit_code == 1 and "key_not_found" in again.stderr
