"""One command run for the model (`shell`, `run_tool`): streamed, time-limited, killable.

The command runs as `/bin/bash -c` in its own process group (`command_process.spawn`), with an
empty stdin. Its merged output goes out line by line through `on_output` while it runs. What the
model gets back is bounded: the head and the tail of the output with the middle left out.
`kill` (from any thread: interrupt) and the time limit end the whole process group, TERM first
and KILL after a grace period.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from chiron.harness.command_process import KillableCommand

KILL_GRACE_S = 1.0
# A background job may keep the output pipe open after bash exited; stop reading then.
PIPE_DRAIN_S = 0.5
HEAD_BYTES = 12 * 1024
TAIL_BYTES = 20 * 1024
ITEM_TAIL_BYTES = 64 * 1024  # the `aggregatedOutput` shown in the commandExecution item
_READ_BYTES = 1 << 16


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # bounded: head and tail of the output
    item_output: str  # the tail, for the commandExecution item
    timed_out: bool
    killed: bool  # ended by `kill` (interrupt)
    duration_ms: int


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class CommandRun:
    def __init__(
        self, command: str, cwd: str, timeout_s: float, on_output: Callable[[list[str]], None]
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.on_output = on_output
        self._child = KillableCommand(KILL_GRACE_S)
        self._head = bytearray()
        self._tail = bytearray()
        self._item_tail = bytearray()
        self._total = 0

    def kill(self) -> None:
        self._child.kill()

    def run(self) -> CommandResult:
        started = time.monotonic()
        try:
            proc = self._child.start(self.command, self.cwd)
        except (OSError, ValueError) as exc:
            # ValueError: a NUL byte or lone surrogate that no argv can carry.
            self._record(f"cannot run the command: {exc}\n".encode())
            return self._result(127, started, timed_out=False)
        if proc is None:  # killed before it started
            return self._result(130, started, timed_out=False)
        os.close(proc.stdin_fd)
        timed_out = False
        try:
            timed_out = self._pump(started + self.timeout_s)
        finally:
            os.close(proc.output_fd)
        return self._result(self._child.wait(), started, timed_out=timed_out)

    def _pump(self, deadline: float) -> bool:
        """Read output until EOF (or the drain delay after exit); True when the time ran out."""
        pending = bytearray()
        timed_out = False
        for data in self._child.output(read_bytes=_READ_BYTES, drain_s=PIPE_DRAIN_S):
            now = time.monotonic()
            if now >= deadline and not timed_out and self._child.kill_requested_at is None:
                timed_out = True
                self.kill()
            if not data:
                continue
            self._record(data)
            pending += data
            cut = pending.rfind(b"\n") + 1
            if cut:
                self._emit(bytes(pending[:cut]))
                del pending[:cut]
            elif len(pending) > _READ_BYTES:
                self._emit(bytes(pending))
                pending.clear()
        if pending:
            self._emit(bytes(pending))
        return timed_out

    def _emit(self, chunk: bytes) -> None:
        lines = _decode(chunk).split("\n")
        last = lines.pop()
        deltas = [line + "\n" for line in lines]
        if last:
            deltas.append(last)
        self.on_output(deltas)

    def _record(self, data: bytes) -> None:
        self._total += len(data)
        room = HEAD_BYTES - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]
        self._item_tail += data
        if len(self._item_tail) > 2 * ITEM_TAIL_BYTES:
            del self._item_tail[:-ITEM_TAIL_BYTES]

    def _result(self, exit_code: int, started: float, *, timed_out: bool) -> CommandResult:
        tail = bytes(self._tail[-TAIL_BYTES:])
        omitted = self._total - len(self._head) - len(tail)
        output = _decode(bytes(self._head))
        if omitted > 0:
            output += f"\n[… {omitted} bytes of output omitted …]\n"
        output += _decode(tail)
        item_output = _decode(bytes((self._head + self._item_tail)[-ITEM_TAIL_BYTES:]))
        return CommandResult(
            exit_code=exit_code,
            output=output,
            item_output=item_output,
            timed_out=timed_out,
            killed=self._child.kill_requested_at is not None and not timed_out,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
