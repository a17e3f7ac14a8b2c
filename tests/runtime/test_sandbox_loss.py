"""A sandbox that dies mid-turn fails the execution clearly; the next turn gets a new one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.helpers import (
    create_session,
    execute,
    get_execution,
    output_deltas,
    poll_events,
    wait_terminal,
)

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry))
    return found


def _kill_tree(pid: int) -> None:
    """Kill a process and everything under it, top first, so no parent sees a child die."""
    tree, index = [pid], 0
    while index < len(tree):
        tree.extend(_children(tree[index]))
        index += 1
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


@pytest.mark.parametrize("victim", ["harness", "supervisor"])
async def test_killed_sandbox_fails_turn_with_sandbox_lost(
    server: RunningServer, victim: str
) -> None:
    client = server.client
    await create_session(client, "api:lost")
    execution_id = await execute(client, "api:lost", "echo started; sleep 60")
    async with asyncio.timeout(30):
        while output_deltas(await poll_events(client, "api:lost", wait=1)) != ["started"]:
            await asyncio.sleep(0.05)
    session = (await client.get("/api/session/api:lost")).json()["session"]
    sandbox_dir = server.settings.sandboxes_dir / session["sandbox_id"]
    supervisor_pid = int((sandbox_dir / "supervisor.pid").read_text())
    if victim == "supervisor":
        os.kill(supervisor_pid, signal.SIGKILL)
    else:
        for child in _children(supervisor_pid):
            _kill_tree(child)

    events = await wait_terminal(client, "api:lost", execution_id, timeout=30)
    assert events[-1]["event_type"] == "session.execution_failed"
    assert events[-1]["payload"]["reason"] == "sandbox_lost"
    execution = await get_execution(client, "api:lost", execution_id)
    assert execution["status"] == "failed" and "sandbox lost" in execution["error"]

    retry = await execute(client, "api:lost", "echo fresh")
    later = await wait_terminal(client, "api:lost", retry)
    assert later[-1]["event_type"] == "session.execution_completed"
    replaced = [e for e in later if e["event_type"] == "session.sandbox_replaced"]
    assert replaced and replaced[0]["payload"]["old_sandbox_id"] == session["sandbox_id"]
    ready = [e for e in later if e["event_type"] == "session.sandbox_ready"]
    assert ready[0]["payload"]["source"] == "cold_create"
    assert output_deltas(later) == ["fresh"]
