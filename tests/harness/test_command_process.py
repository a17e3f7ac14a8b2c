"""`spawn`: what `subprocess.Popen` gave the shell adapter, from `os.posix_spawn`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chiron.harness.command_process import CommandProcess, spawn


def _finish(proc: CommandProcess, stdin: bytes = b"") -> tuple[int, bytes]:
    os.write(proc.stdin_fd, stdin)
    os.close(proc.stdin_fd)
    output = b""
    while chunk := os.read(proc.output_fd, 65536):
        output += chunk
    os.close(proc.output_fd)
    deadline = time.monotonic() + 10
    while (code := proc.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert code is not None
    return code, output


def _run(command: str, stdin: bytes = b"") -> tuple[int, bytes]:
    # The current directory, so the test process's own does not change.
    return _finish(spawn(command, os.getcwd()), stdin)


def test_stdout_and_stderr_share_one_pipe_and_stdin_is_piped() -> None:
    assert _run("echo out; echo err >&2; cat", b"in\n") == (0, b"out\nerr\nin\n")


def test_exit_codes_and_deaths_by_signal() -> None:
    assert _run("exit 3") == (3, b"")
    assert _run("kill -TERM $$") == (-15, b"")


def test_the_command_leads_its_own_process_group() -> None:
    code, output = _run("echo $$; cut -d' ' -f5 /proc/$$/stat")
    pid, group = output.split()
    assert code == 0 and pid == group


def test_sigpipe_is_back_at_its_default() -> None:
    # With SIGPIPE ignored (as in Python) `yes` would report a write error instead.
    assert _run("yes | head -n 1") == (0, b"y\n")


def test_no_other_descriptor_reaches_the_command() -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        code, output = _run(f"[ -e /proc/$$/fd/{write_end} ] && echo leaked || echo closed")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert (code, output) == (0, b"closed\n")


def test_the_command_runs_in_cwd(tmp_path: Path) -> None:
    before = os.getcwd()
    try:
        assert _finish(spawn("pwd", str(tmp_path))) == (0, f"{tmp_path}\n".encode())
    finally:
        os.chdir(before)


def test_an_unusable_cwd_is_an_oserror() -> None:
    before = os.getcwd()
    with pytest.raises(FileNotFoundError):
        spawn("true", "/nonexistent/chiron-test")
    assert os.getcwd() == before
