"""`chiron up --demo` as a person runs it: a real process, a real demo turn, a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.slow

CHIRON = Path(sys.executable).with_name("chiron")


async def test_up_demo_streams_a_turn_then_serves_until_ctrl_c(
    tmp_path: Path, database_url: str
) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHIRON_") or key == "CHIRON_TEST_PG_DSN"
    }
    env |= {
        "CHIRON_HOME": str(home),
        "CHIRON_LISTEN": f"127.0.0.1:{port}",
        "CHIRON_DATABASE_URL": database_url,
        "CHIRON_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        str(CHIRON),
        "up",
        "--demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        shown: list[str] = []

        async def read_until_result() -> None:
            assert process.stdout is not None
            while line := (await process.stdout.readline()).decode():
                shown.append(line)
                if "result of exe_" in line:
                    return

        await asyncio.wait_for(read_until_result(), timeout=90)
        # Still serving after the demo.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /readyz HTTP/1.0\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        process.send_signal(signal.SIGINT)
        rest, errors = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await _stop_sandboxes(home)
    output = "".join(shown) + rest.decode()
    assert process.returncode == 0, errors.decode()[-2000:]
    steps = [output.index(f"step {n} of 3") for n in (1, 2, 3)]
    assert steps == sorted(steps)
    assert "Linux" in output and "uid=" in output
    key_file = home / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    text = errors.decode()
    assert f"http://127.0.0.1:{port}" in text and f"admin key: {key_file}" in text
    assert "✓ completed" in text and "stopped" in text


async def _stop_sandboxes(home: Path) -> None:
    # Sandboxes outlive the control plane by design; a test must not leave them behind.
    if not (home / "sandboxes").exists():
        return
    backend = LocalSandboxBackend(Settings(home=home))
    for info in await backend.list():
        await backend.stop(info.sandbox_id)
