"""The standby supervisor: taken by the next cold sandbox, replaced, and never leaked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chiron.sandbox.backend import ResourceLimits, SandboxSpec, SandboxState
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.sandbox.conftest import new_sandbox_id

LIMITS = ResourceLimits(memory_bytes=1 << 31, cpu_seconds=60, max_processes=64, file_bytes=1 << 26)


async def test_cold_sandbox_takes_the_spare_and_a_new_one_is_started(settings: Settings) -> None:
    backend = LocalSandboxBackend(settings, keep_spare_supervisor=True)
    try:
        backend.start_spare()
        spare = backend._spare
        assert spare is not None and spare.poll() is None
        sandbox_id = await backend.create(
            SandboxSpec(sandbox_id=new_sandbox_id(), harness="shell", limits=LIMITS)
        )
        assert await backend.status(sandbox_id) is SandboxState.RUNNING
        assert spare.poll() == 0, "the spare became the sandbox's launcher and exited"
        # Its replacement starts a moment later, once the new sandbox is under way.
        deadline = asyncio.get_running_loop().time() + 5
        while backend._spare is None:
            assert asyncio.get_running_loop().time() < deadline, "no replacement spare"
            await asyncio.sleep(0.01)
        assert backend._spare is not spare and backend._spare.poll() is None
        log = (settings.sandboxes_dir / sandbox_id / "supervisor.log").read_text()
        assert "start failed" not in log
        await backend.stop(sandbox_id)
    finally:
        backend.close()
    assert backend._spare is None


async def test_closing_the_backend_cancels_a_pending_replacement(settings: Settings) -> None:
    backend = LocalSandboxBackend(settings, keep_spare_supervisor=True)
    backend.start_spare()
    sandbox_id = await backend.create(
        SandboxSpec(sandbox_id=new_sandbox_id(), harness="shell", limits=LIMITS)
    )
    backend.close()
    await asyncio.sleep(0.2)
    assert backend._spare is None
    await backend.stop(sandbox_id)


def test_a_spare_whose_control_plane_dies_exits(tmp_path: Path) -> None:
    # A control plane in its own process keeps a spare, then is killed without cleaning up.
    script = (
        "import sys, time\n"
        "from chiron.sandbox.local_backend import LocalSandboxBackend\n"
        "from chiron.settings import Settings\n"
        f"backend = LocalSandboxBackend(Settings(home={str(tmp_path)!r}), "
        "keep_spare_supervisor=True)\n"
        "backend.start_spare()\n"
        "print(backend._spare.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert owner.stdout is not None
    spare_pid = int(owner.stdout.readline())
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(spare_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(spare_pid, signal.SIGKILL)
    raise AssertionError("the spare supervisor outlived its control plane")
