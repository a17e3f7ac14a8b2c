"""The `shell` adapter: each user turn runs its text with `/bin/bash -c` in the workspace.

No model involved: the command's merged stdout+stderr streams as `commandExecution` output
deltas, then the output tail becomes the turn's agent message. While a turn runs, another user
line is written to the command's stdin (steering); an interrupt kills the command's process
group (TERM, then KILL after a grace period).
"""

from __future__ import annotations

import _queue
import os
import time

from chiron.harness import protocol
from chiron.harness.command_process import KillableCommand
from chiron.harness.daemon_thread import DaemonThread
from chiron.harness.process_table import live_processes
from chiron.harness.server import NdjsonWriter, note
from chiron.harness.turn_slot import TurnSlot

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from typing import Any

TAIL_BYTES = 64 * 1024
KILL_GRACE_S = 2.0
# After bash exits, a background job may still hold the output pipe open; stop waiting for
# its EOF after this long so `sleep 100 &` does not keep the turn running.
PIPE_DRAIN_S = 0.5
# A "line" longer than this is cut into several deltas, so memory stays bounded.
MAX_LINE_BYTES = 16 * 1024 * 1024
_READ_BYTES = 1 << 20


def _new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(8).hex()}"


def _decode_tail(data: bytes) -> str:
    start = 0
    # Drop a UTF-8 sequence cut in half by the tail window.
    while start < len(data) and start < 3 and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:].decode("utf-8", "replace")


def _split_point(data: bytearray, limit: int) -> int:
    """An index <= limit that does not cut a UTF-8 sequence."""
    cut = limit
    while cut > limit - 3 and cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


class _Turn:
    """One running command; its thread owns every notification of the turn."""

    def __init__(self, adapter: ShellAdapter, command: str, *, announce_thread: bool) -> None:
        self.adapter = adapter
        self.command = command
        self.announce_thread = announce_thread
        self.turn_id = _new_id("turn")
        self.item_id = _new_id("item")
        self.child = KillableCommand(KILL_GRACE_S)
        self.tail = bytearray()
        self.steering: _queue.SimpleQueue[bytes | None] = _queue.SimpleQueue()
        self.thread = DaemonThread(self._run, name=f"turn-{self.turn_id}")

    # -- called from the stdin thread --------------------------------------------------

    def steer(self, text: str) -> None:
        self.steering.put(text.encode("utf-8", "replace") + b"\n")

    def interrupt(self) -> None:
        self.child.kill()

    # -- turn thread -------------------------------------------------------------------

    def _emit(self, message: protocol.Message) -> None:
        self.adapter.writer.emit(message)

    def _group_alive(self) -> bool:
        """Whether a live (not zombie) process is left in the command's process group."""
        assert self.child.proc is not None
        group = self.child.proc.pid
        return any(pgrp == group for _, _, pgrp in live_processes())

    def _run(self) -> None:
        thread_id, cwd = self.adapter.thread_id, self.adapter.workspace
        if self.announce_thread:
            self._emit(protocol.thread_started(thread_id))
        self._emit(protocol.turn_started(thread_id, self.turn_id))
        self._emit(
            protocol.item_started(
                thread_id,
                self.turn_id,
                protocol.command_execution_item(self.item_id, self.command, cwd, "inProgress"),
            )
        )
        started = time.monotonic()
        exit_code = self._execute(cwd)
        duration_ms = int((time.monotonic() - started) * 1000)
        tail = _decode_tail(bytes(self.tail[-TAIL_BYTES:]))
        interrupted = self.child.kill_requested_at is not None
        self._emit(
            protocol.item_completed(
                thread_id,
                self.turn_id,
                protocol.command_execution_item(
                    self.item_id,
                    self.command,
                    cwd,
                    "completed" if exit_code == 0 and not interrupted else "failed",
                    exit_code=exit_code,
                    aggregated_output=tail,
                    duration_ms=duration_ms,
                ),
            )
        )
        if not interrupted:
            text = tail
            if exit_code != 0:
                separator = "" if not tail or tail.endswith("\n") else "\n"
                text = f"{tail}{separator}(exit status {exit_code})"
            self._emit(
                protocol.item_completed(
                    thread_id, self.turn_id, protocol.agent_message_item(_new_id("msg"), text)
                )
            )
        self.adapter.finish_turn(
            self,
            protocol.turn_completed(
                thread_id, self.turn_id, "interrupted" if interrupted else "completed"
            ),
        )

    def _execute(self, cwd: str) -> int:
        try:
            proc = self.child.start(self.command, cwd)
        except (OSError, ValueError) as exc:
            # ValueError: a NUL byte or lone surrogate that no argv can carry.
            message = f"cannot run /bin/bash: {exc}\n".encode()
            self._output(bytearray(message), final=True)
            return 127
        if proc is None:  # interrupted before it started
            return 130
        feeder = DaemonThread(self._feed_stdin, proc.stdin_fd, name=f"stdin-{self.turn_id}")
        feeder.start()
        try:
            self._pump()
        finally:
            self.steering.put(None)
            os.close(proc.output_fd)
        # bash may still run after closing its output; keep honouring an interrupt meanwhile.
        exit_code = self.child.wait()
        if self.child.kill_requested_at is not None:
            self._wait_group_gone()
        feeder.join(timeout=1.0)
        return exit_code

    def _feed_stdin(self, fd: int) -> None:
        while (data := self.steering.get()) is not None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                note("steering dropped: the command no longer reads its stdin")
        os.close(fd)

    def _pump(self) -> None:
        pending = bytearray()
        for data in self.child.output(read_bytes=_READ_BYTES, drain_s=PIPE_DRAIN_S):
            if data:
                pending += data
                self._output(pending, final=False)
        self._output(pending, final=True)

    def _wait_group_gone(self) -> None:
        # Reported as interrupted only once nothing of the command's group is left.
        deadline = time.monotonic() + KILL_GRACE_S + 5.0
        while self._group_alive() and time.monotonic() < deadline:
            self.child.escalate(time.monotonic())
            time.sleep(0.01)

    def _output(self, pending: bytearray, *, final: bool) -> None:
        """Emit every complete line of `pending` (all of it when `final`) and keep the rest."""
        cut = pending.rfind(b"\n") + 1
        if final:
            cut = len(pending)
        elif cut == 0 and len(pending) > MAX_LINE_BYTES:
            cut = _split_point(pending, MAX_LINE_BYTES)
        if cut == 0:
            return
        chunk = bytes(pending[:cut])
        del pending[:cut]
        self.tail += chunk[-TAIL_BYTES:]
        if len(self.tail) > 2 * TAIL_BYTES:
            del self.tail[:-TAIL_BYTES]
        # Only "\n" ends a line here (str.splitlines would also split on \r, \x0c, …).
        lines = chunk.decode("utf-8", "replace").split("\n")
        last = lines.pop()
        deltas = [line + "\n" for line in lines]
        if last:
            deltas.append(last)
        self.adapter.writer.emit_bytes(
            protocol.output_delta_lines(self.adapter.thread_id, self.turn_id, self.item_id, deltas)
        )


class ShellAdapter(TurnSlot):
    """Runs each user turn as a shell command; see the module docstring."""

    _turn: _Turn | None

    def __init__(self, writer: NdjsonWriter, workspace: str) -> None:
        super().__init__(writer, workspace)
        self.thread_id = _new_id("thread")

    def _new_turn(self, text: str, line: dict[str, Any] | None, *, first: bool) -> _Turn:
        return _Turn(self, text, announce_thread=first)

    def finish_turn(self, turn: _Turn, completed: protocol.Message) -> None:
        with self._lock:
            self._end_turn(turn, completed)

    def close(self) -> None:
        # Nobody can steer any more: close the command's stdin and let the turn finish, so
        # `printf 'cmd\n' | python -m chiron.harness` runs cmd. Inside a sandbox stdin only
        # ends when the supervisor died, and then the kernel ends the sandbox anyway.
        with self._lock:
            turn = self._turn
        if turn is not None:
            turn.steering.put(None)
            turn.thread.join()
