"""Isolation `none`: harnesses run directly on the host, and the backend says so."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from chiron.sandbox import host_processes
from chiron.sandbox.backend import SandboxSpec, SandboxState, SandboxUnavailable
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.sandbox.conftest import LIMITS, Reader, deltas, new_sandbox_id, run_turn


async def cmdline_settles(pid: int, expected: bytes, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (seen := host_processes.cmdline(pid)) != expected and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return seen


@pytest.fixture
async def unisolated(settings: Settings) -> AsyncIterator[LocalSandboxBackend]:
    backend = LocalSandboxBackend(
        settings.model_copy(update={"sandbox_isolation": "none"}), bwrap_path="/nonexistent/bwrap"
    )
    yield backend
    for info in await backend.list():
        await backend.stop(info.sandbox_id)


async def test_runs_without_bwrap_and_says_isolation_is_off(
    unisolated: LocalSandboxBackend, settings: Settings
) -> None:
    note = unisolated.isolation_note
    assert note is not None and "isolation is off" in note
    unisolated.check()
    sandbox_id = await unisolated.create(
        SandboxSpec(sandbox_id=new_sandbox_id(), harness="shell", limits=LIMITS)
    )
    assert await unisolated.status(sandbox_id) is SandboxState.RUNNING
    root = settings.sandboxes_dir / sandbox_id
    messages = await run_turn(
        unisolated,
        Reader(unisolated, sandbox_id),
        "pwd; echo $HOME; sleep 1003 >/dev/null 2>&1 & echo $!",
    )
    workspace, home, sleeper = deltas(messages).split()
    assert (workspace, home) == (str(root / "workspace"), str(root / "home"))
    # The shell prints `$!` right after fork, possibly before the child has exec'd `sleep`.
    assert await cmdline_settles(int(sleeper), b"sleep\x001003\x00") == b"sleep\x001003\x00"

    await unisolated.pause(sandbox_id)
    assert await unisolated.status(sandbox_id) is SandboxState.SUSPENDED
    await unisolated.resume(sandbox_id)

    await unisolated.stop(sandbox_id)
    assert host_processes.wait_gone([int(sleeper)], 5.0)
    assert not root.exists()


def test_bwrap_isolation_needs_bwrap(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxUnavailable, match="CHIRON_SANDBOX_ISOLATION=none"):
        LocalSandboxBackend(settings, bwrap_path="/nonexistent/bwrap")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        LocalSandboxBackend(settings)


def test_the_sandbox_python_must_exist_under_usr(settings: Settings) -> None:
    with pytest.raises(SandboxUnavailable, match="CHIRON_SANDBOX_PYTHON"):
        LocalSandboxBackend(settings.model_copy(update={"sandbox_python": "/nonexistent/python"}))
    if os.access("/bin/sh", os.X_OK) and not os.path.realpath("/bin").startswith("/usr"):
        return
    with pytest.raises(SandboxUnavailable, match="under /usr"):
        LocalSandboxBackend(settings.model_copy(update={"sandbox_python": "/bin/sh"}))
