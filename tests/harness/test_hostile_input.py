"""Input a sandboxed agent or a client could send that must not wedge or hijack the harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chiron.sandbox.bwrap_command import harness_argv

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(workspace: Path, *lines: str) -> list[dict[str, object]]:
    argv = harness_argv(sys.executable, "shell")
    done = subprocess.run(
        argv,
        input="".join(line + "\n" for line in lines).encode(),
        capture_output=True,
        cwd=workspace,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "CHIRON_WORKSPACE": str(workspace)},
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith(b"{")]


def _turn(text: str) -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}})


def test_a_module_planted_in_the_workspace_is_not_imported(tmp_path: Path) -> None:
    (tmp_path / "_json.py").write_text("raise SystemExit('hijacked')\n")
    (tmp_path / "chiron.py").write_text("raise SystemExit('hijacked')\n")
    messages = _run(tmp_path, _turn("echo still-mine"))
    deltas = [m for m in messages if m.get("method") == "item/commandExecution/outputDelta"]
    assert [d["params"]["delta"] for d in deltas] == ["still-mine\n"]  # type: ignore[index]


def test_a_nul_byte_fails_that_command_and_the_next_turn_still_runs(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        harness_argv(sys.executable, "shell"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "CHIRON_WORKSPACE": str(tmp_path)},
    )
    assert harness.stdin is not None and harness.stdout is not None

    def turn(text: str) -> str:
        assert harness.stdin is not None and harness.stdout is not None
        harness.stdin.write((_turn(text) + "\n").encode())
        harness.stdin.flush()
        output = ""
        for raw in harness.stdout:
            message = json.loads(raw)
            if message.get("method") == "item/commandExecution/outputDelta":
                output += message["params"]["delta"]
            if message.get("method") == "turn/completed":
                return output
        raise AssertionError("the harness stopped")

    try:
        assert "cannot run /bin/bash" in turn("echo a\u0000b")
        assert turn("echo after") == "after\n"
    finally:
        harness.stdin.close()
        harness.wait(timeout=30)
        harness.stdout.close()
