"""The installed `chiron` script: expected failures are one line on stderr, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

CHIRON = Path(sys.executable).with_name("chiron")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHIRON_")}
    return subprocess.run(
        [str(CHIRON), *args], env=clean | env, capture_output=True, text=True, timeout=60
    )


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    unreachable = run(
        "sessions",
        CHIRON_HOME=str(tmp_path),
        CHIRON_URL=f"http://127.0.0.1:{free_port()}",
        CHIRON_API_KEY="k",
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the Chiron server at")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    no_key = run("sessions", CHIRON_HOME=str(tmp_path))
    assert no_key.returncode == 1 and "no API key" in no_key.stderr
    bad_setting = run("sessions", CHIRON_HOME=str(tmp_path), CHIRON_LISTEN="nowhere")
    assert bad_setting.returncode == 1 and "CHIRON_LISTEN" in bad_setting.stderr
    assert "Traceback" not in unreachable.stderr + no_key.stderr + bad_setting.stderr


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "chat", "sessions", "events", "doctor", "keys"):
        assert f"  {command} " in result.stdout
