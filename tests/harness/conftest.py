"""A harness process driven directly over its stdin/stdout, without a sandbox."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import chiron

PACKAGE_PARENT = str(Path(chiron.__file__).resolve().parent.parent)
Message = dict[str, Any]  # one line of the harness's stdout


class HarnessProcess:
    def __init__(
        self, workspace: Path, adapter: str = "shell", env: dict[str, str] | None = None
    ) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": PACKAGE_PARENT,
            "CHIRON_WORKSPACE": str(workspace),
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-S", "-m", "chiron.harness", "--adapter", adapter],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workspace,
            env=env,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._closed: tuple[int, bytes] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str | dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        text = line if isinstance(line, str) else json.dumps(line)
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def user(self, text: str) -> None:
        self.send({"type": "user", "message": {"role": "user", "content": text}})

    def next(self, timeout: float = 20.0) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "harness stdout ended"
        message: dict[str, Any] = json.loads(line)
        return message

    def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        messages = []
        while True:
            messages.append(self.next(timeout))
            if predicate(messages[-1]):
                return messages

    def turn(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        return self.until(lambda m: m["method"] == "turn/completed", timeout)

    def close(self) -> tuple[int, bytes]:
        """Close stdin, wait for the exit; (exit code, stderr). Safe to call twice."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        if self._closed is not None:
            return self._closed
        self.proc.stdin.close()
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._closed = (code, stderr)
        return self._closed


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def harness(workspace: Path) -> Iterator[HarnessProcess]:
    process = HarnessProcess(workspace)
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
    process.close()


def deltas(messages: list[Message]) -> str:
    return "".join(
        m["params"]["delta"] for m in messages if m["method"] == "item/commandExecution/outputDelta"
    )


def agent_texts(messages: list[Message]) -> list[str]:
    return [
        m["params"]["item"]["text"]
        for m in messages
        if m["method"] == "item/completed" and m["params"]["item"]["type"] == "agentMessage"
    ]


def items(messages: list[Message], kind: str, method: str = "item/completed") -> list[Message]:
    return [
        m["params"]["item"]
        for m in messages
        if m["method"] == method and m["params"]["item"]["type"] == kind
    ]


def command_started(message: Message) -> bool:
    """Whether `message` is a command's `item/started`."""
    started = message["method"] == "item/started"
    return started and message["params"]["item"]["type"] == "commandExecution"


def ending(messages: list[Message]) -> Message:
    """The turn of the one terminal line, which ends `messages`; no error ended it before."""
    terminals = [m for m in messages if m["method"] == "turn/completed"]
    assert terminals == [messages[-1]]
    assert not any(m["method"] == "error" and not m["params"]["willRetry"] for m in messages)
    turn: Message = messages[-1]["params"]["turn"]
    return turn


def _proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the `/proc/<pid>/stat` fields after the command name) of every process."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        yield int(name), stat[stat.rfind(b")") + 2 :].split()


def live_group_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (an adopting init may reap late)."""
    return [
        pid
        for pid, fields in _proc_stats()
        if int(fields[2]) == group and fields[0] not in (b"Z", b"X")
    ]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [child for child, fields in _proc_stats() if int(fields[1]) == pid]


def running(marker: str) -> bool:
    """Whether a process with `marker` in its command line runs."""
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False
