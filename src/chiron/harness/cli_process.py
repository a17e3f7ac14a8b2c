"""What the `codex` and `claudecode` adapters share: the CLI child process and the turn request
(how they run a turn is `cli_adapter`).

`CliProcess` runs an agent CLI as a child speaking one JSON object per stdout line. It leads its
own process group (the CLIs start node, a native binary and the model's commands beneath it),
so `kill` reaches every process of it. A reader thread turns stdout lines into `Inbox` events
(`msg` with the decoded object, `eof` when stdout closes); another forwards stderr, line by
line, to the harness's stderr and keeps the last lines for the error message when the CLI dies.
A stdout line that is not a JSON object is CLI noise and goes to stderr too.

`TurnRequest` is what a stdin `user` line asks of a turn: the text, the model overrides, the
system prompt, and the session's earlier state (`harness_thread_id`, `transcript`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chiron.harness.process_table import live_processes
from chiron.harness.server import note

STDERR_TAIL_LINES = 20
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # codex colours its log lines
_OVERRIDE_SOURCES = ("metadata", "execution_metadata")  # the execution's wins


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    """A numeric environment setting; a missing or unusable value falls back to `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):  # also rejects NaN
        note(f"{name}={raw!r} is not a number >= {minimum:g}; using {default:g}")
        return default
    return value


@dataclass(frozen=True)
class Event:
    """One inbox entry: `msg` / `eof` from a CLI process, or `steer` / `interrupt` from stdin."""

    kind: str
    payload: Any = None
    source: object = None  # the CliProcess a `msg`/`eof` came from


class Inbox:
    """The turn thread's single queue: CLI output and stdin commands, in arrival order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Event] = queue.Queue()

    def put(self, event: Event) -> None:
        self._queue.put(event)

    def get(self, timeout: float | None) -> Event | None:
        """The next event, or None after `timeout` seconds (None: wait forever)."""
        try:
            return self._queue.get(timeout=None if timeout is None else max(timeout, 0.0))
        except queue.Empty:
            return None

    def drain(self) -> list[Event]:
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events


class CliProcess:
    """An agent CLI child process; see the module docstring."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        inbox: Inbox,
    ) -> None:
        self.name = name
        self._inbox = inbox
        self._write_lock = threading.Lock()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        # OSError (a missing executable, an unusable cwd) propagates to the caller.
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        self.pid = self._proc.pid
        self._stdout_done = threading.Event()
        threading.Thread(target=self._read_stdout, name=f"{name}-stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True).start()

    # -- output ------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        try:
            for raw in self._proc.stdout:
                line = raw.strip()
                if not line:
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if isinstance(message, dict):
                    self._inbox.put(Event("msg", message, self))
                else:
                    self._stderr_line(line.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass  # stdout closed under us by `kill`
        finally:
            self._stdout_done.set()
            self._inbox.put(Event("eof", None, self))

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        try:
            for raw in self._proc.stderr:
                text = raw.decode("utf-8", "replace").rstrip()
                if text:
                    self._stderr_line(text)
        except (OSError, ValueError):
            pass

    def _stderr_line(self, text: str) -> None:
        text = _ANSI_ESCAPE.sub("", text)
        self._stderr_tail.append(text)
        sys.stderr.write(f"{self.name}: {text}\n")
        sys.stderr.flush()

    def stderr_tail(self, lines: int = 5) -> str:
        """The CLI's last stderr lines, joined: the likely reason when it died."""
        return " | ".join(list(self._stderr_tail)[-lines:])

    def unexpected_exit(self, what: str) -> str:
        """`<what> exited unexpectedly (<how>): <its last stderr lines>`, for a turn it failed."""
        tail = self.stderr_tail()
        return f"{what} exited unexpectedly ({self.exit_description()})" + (
            f": {tail}" if tail else ""
        )

    # -- input -------------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> bool:
        """Write one JSON line to the CLI's stdin; False when it no longer reads it."""
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        assert self._proc.stdin is not None
        with self._write_lock:
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (OSError, ValueError):
                return False
        return True

    # -- lifetime ----------------------------------------------------------------------

    def alive(self) -> bool:
        return self._proc.poll() is None and not self._stdout_done.is_set()

    def exit_description(self) -> str:
        """`exit status N` / `killed by signal N` (waiting briefly for the exit to be seen)."""
        try:
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_command_groups(self, *, grace_s: float = 1.0) -> None:
        """End the commands the CLI started: every process group below it but its own.

        The CLIs start each command in a session of its own, which killing the CLI's group
        would miss, and codex leaves them running after an interrupt. Found by ancestry, so
        this must run while the CLI is still alive (orphans are adopted elsewhere).
        """
        groups = {group for pid, (_, group) in _descendants(self.pid).items() if group != self.pid}
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while groups and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = {group for _, group in _descendants(self.pid).values()}
            groups &= alive
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def kill(self, *, grace_s: float = 1.0, first_signal: int = signal.SIGTERM) -> None:
        """End the CLI and everything it started: `first_signal`, then SIGKILL after `grace_s`."""
        self.signal_group(first_signal)
        deadline = time.monotonic() + grace_s
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # The group outlives its leader when a command ignores the first signal.
        self.signal_group(signal.SIGKILL)
        try:
            self._proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            note(f"{self.name} (pid {self.pid}) did not exit after SIGKILL")
        self._close_pipes()

    def close(self, *, grace_s: float = 2.0) -> None:
        """Close its stdin (the CLIs exit on EOF), then kill what is left after `grace_s`."""
        assert self._proc.stdin is not None
        with self._write_lock, contextlib.suppress(OSError):
            self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=grace_s)
        self.kill(grace_s=0.5)

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                pipe.close()


def _descendants(root: int) -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process below `root`."""
    table = {pid: (parent, group) for pid, parent, group in live_processes()}
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, tuple[int, int]] = {}
    frontier = [root]
    while frontier:
        for pid in children.get(frontier.pop(), []):
            if pid not in found:
                found[pid] = table[pid]
                frontier.append(pid)
    return found


# -- what a user line asks of a turn ------------------------------------------------------


@dataclass(frozen=True)
class TurnRequest:
    text: str
    model: str | None = None
    reasoning_effort: str | None = None
    provider: str | None = None
    system_prompt: str | None = None
    harness_thread_id: str | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_line(cls, text: str, line: Mapping[str, Any] | None) -> TurnRequest:
        context = line.get("session_context") if line is not None else None
        if not isinstance(context, Mapping):
            return cls(text)
        chosen: dict[str, str] = {}
        for source in _OVERRIDE_SOURCES:
            metadata = context.get(source)
            if not isinstance(metadata, Mapping):
                continue
            for key in ("model", "reasoning_effort", "provider"):
                value = metadata.get(key)
                if isinstance(value, str) and value.strip():
                    chosen[key] = value.strip()
        transcript = []
        entries = context.get("transcript")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            role, said = entry.get("role"), entry.get("text")
            if role in ("user", "assistant") and isinstance(said, str) and said:
                transcript.append((role, said))
        thread_id = context.get("harness_thread_id")
        system_prompt = context.get("system_prompt")
        return cls(
            text,
            model=chosen.get("model"),
            reasoning_effort=chosen.get("reasoning_effort"),
            provider=chosen.get("provider"),
            system_prompt=system_prompt
            if isinstance(system_prompt, str) and system_prompt
            else None,
            harness_thread_id=thread_id if isinstance(thread_id, str) and thread_id else None,
            transcript=transcript,
        )

    def model_for(self, provider: str, default: str | None) -> str | None:
        """The model to use with `provider`'s API: the override, else `CHIRON_MODEL` when it
        names a model of that provider (`CHIRON_MODEL_PROVIDER` unset or equal), else
        `default`."""
        if self.model is not None:
            return self.model
        env_model = os.environ.get("CHIRON_MODEL", "").strip()
        env_provider = os.environ.get("CHIRON_MODEL_PROVIDER", "").strip()
        if env_model and env_provider in ("", provider):
            return env_model
        return default

    def provider_mismatch(self, provider: str, harness: str) -> str | None:
        """The failure message when the overrides ask for another provider's API."""
        if self.provider is None or self.provider == provider:
            return None
        return (
            f"the {harness} harness talks to the {provider} API only; this session or "
            f"execution asks for provider {self.provider!r}"
        )

    def with_transcript(self) -> str:
        """The text, preceded by the earlier conversation when the CLI cannot remember it."""
        if not self.transcript:
            return self.text
        said = "\n\n".join(
            f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in self.transcript
        )
        return (
            "Conversation so far (earlier turns of this session, restored from its record):\n\n"
            f"{said}\n\nNew message from the user:\n\n{self.text}"
        )
