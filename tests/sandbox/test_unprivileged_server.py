"""The layout for servers that do not run as root: bwrap with a user namespace.

The test suite runs as root, so this runs a small backend script as `nobody` to exercise that
code path for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import chiron
from chiron.settings import Settings

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from chiron.settings import Settings
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.sandbox.backend import SandboxSpec, ResourceLimits

async def main():
    backend = LocalSandboxBackend(Settings(home=Path(sys.argv[1])))
    backend.check()
    limits = ResourceLimits(4 << 30, 600, 256, 1 << 30)
    sandbox_id = await backend.create(SandboxSpec("sbx_nobody", "shell", limits))
    # A tree the server cannot delete without fixing permissions first, and a leftover job.
    command = "mkdir -p ro/sub && chmod 000 ro/sub ro; id -u; echo $HOME; sleep 1000 & echo bg"
    line = {"type": "user", "message": {"content": command}}
    await backend.write_input(sandbox_id, [json.dumps(line)], token="t")
    output = []
    async for lines in backend.open_output(sandbox_id, 0, line_cap=1 << 20):
        messages = [json.loads(raw.data) for raw in lines]
        deltas = [m for m in messages if m["method"] == "item/commandExecution/outputDelta"]
        output += [m["params"]["delta"] for m in deltas]
        if any(m["method"] == "turn/completed" for m in messages):
            break
    await backend.pause(sandbox_id)
    paused = (await backend.status(sandbox_id)).value
    await backend.resume(sandbox_id)
    await backend.stop(sandbox_id)
    after = (await backend.status(sandbox_id)).value
    removed = not (Path(sys.argv[1]) / "sandboxes" / sandbox_id).exists()
    result = {"output": "".join(output), "paused": paused, "after": after, "removed": removed}
    print(json.dumps(result))

asyncio.run(main())
"""

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_a_non_root_server_gets_working_user_namespace_sandboxes(tmp_path: Path) -> None:
    python = str(Settings(home=tmp_path).sandbox_python)
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip("the sandbox Python cannot load this environment's compiled packages")
    with tempfile.TemporaryDirectory(prefix="chiron-nobody-") as scratch:
        # pytest's tmp_path sits under a root-only directory: nobody needs its own.
        os.chown(scratch, NOBODY, NOBODY)
        _run_as_nobody(python, Path(scratch))


def _run_as_nobody(python: str, home: Path) -> None:
    pythonpath = f"{Path(chiron.__file__).parent.parent}:{sysconfig.get_paths()['purelib']}"
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--",
            python,
            "-c",
            SCRIPT,
            str(home / "chiron"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "CHIRON_HOME": str(home / "chiron"),
            "PYTHONPATH": pythonpath,
        },
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "output": f"{NOBODY}\n/home/agent\nbg\n",
        "paused": "suspended",
        "after": "stopped",
        "removed": True,
    }
    assert not [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit()
        and os.stat(f"/proc/{pid}").st_uid == NOBODY
        and not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    ]
