"""One shell turn's child: `/bin/bash -c COMMAND`, started with `os.posix_spawn`.

`subprocess` is not imported: it pulls in `signal` (and so `enum`), `selectors`, `contextlib` and
`threading`, ~8 ms of the harness's cold start. `spawn` does what `subprocess.Popen([...],
stdin=PIPE, stdout=PIPE, stderr=STDOUT, cwd=cwd, process_group=0, bufsize=0)` did:

- the child leads its own process group (`setpgroup=0`), so an interrupt signals the whole
  command tree with `os.killpg(pid, …)`;
- its stdin is a pipe (kept open for steering) and its stdout and stderr share one pipe;
- it inherits no other descriptor (`close_fds=True`): the harness's own are close-on-exec
  (Python opens them so), and any left inheritable are made close-on-exec before spawning;
- SIGPIPE and SIGXFSZ are back at their defaults (`restore_signals=True`: Python ignores them,
  and `yes | head` expects SIGPIPE);
- it starts in `cwd`. `posix_spawn` cannot change directory in the child on the Pythons we run
  on, so the harness changes its own working directory first. Only the turn thread spawns,
  one turn at a time, always into the workspace, which is where the harness already runs in
  every sandbox; the rest of the harness uses absolute paths.

Unlike `fork` plus Python code before `exec`, `posix_spawn` runs no Python in the child, so it
is safe while other harness threads hold locks.

`KillableCommand` is what both command runners (the shell adapter's turn, the `chiron` agent's
`shell` tool) share: a kill before the spawn means no spawn, a kill while it runs signals its
process group with TERM, then KILL after a grace period; the output is read until EOF, or
shortly after the command exited when a background job keeps the pipe open.
"""

from __future__ import annotations

import _thread
import os
import select
import time

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

# `_signal` is built in and loaded at interpreter start; `signal` would pull in `enum` (~3 ms
# of start-up). typeshed has no stub for it, hence `Any`.
_signal: Any = __import__("_signal")
SIGTERM: int = _signal.SIGTERM
SIGKILL: int = _signal.SIGKILL

BASH = "/bin/bash"


class CommandProcess:
    """A spawned command: its pid (also its process group), stdin and merged-output fds."""

    def __init__(self, pid: int, stdin_fd: int, output_fd: int) -> None:
        self.pid = pid
        self.stdin_fd = stdin_fd
        self.output_fd = output_fd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the command ended (-N when killed by signal N), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Already reaped (SIGCHLD ignored by whoever started us): as `Popen.poll`.
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def signal_group(self, signum: int) -> None:
        """Send `signum` to every process of the command's group that is still there."""
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class KillableCommand:
    """One command that `kill` (from any thread, any time) ends; see the module docstring."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.proc: CommandProcess | None = None
        self.kill_requested_at: float | None = None
        self._killed_hard = False
        self._lock = _thread.allocate_lock()

    def start(self, command: str, cwd: str) -> CommandProcess | None:
        """`spawn(command, cwd)` (raising as it does), or None when a kill came first."""
        with self._lock:
            if self.kill_requested_at is not None:
                return None
            self.proc = spawn(command, cwd)
            return self.proc

    def kill(self) -> None:
        with self._lock:
            if self.kill_requested_at is not None:
                return
            self.kill_requested_at = time.monotonic()
            if self.proc is not None:
                self.proc.signal_group(SIGTERM)

    def escalate(self, now: float) -> None:
        """KILL the process group once `grace_s` passed since `kill` (only once)."""
        requested = self.kill_requested_at
        if requested is None or self._killed_hard or self.proc is None:
            return
        if now - requested >= self.grace_s:
            self._killed_hard = True
            self.proc.signal_group(SIGKILL)

    def output(self, *, read_bytes: int, drain_s: float) -> Iterator[bytes]:
        """The started command's merged output as it arrives, until EOF or `drain_s` after the
        command exited. Every 50 ms without output it yields b"" (time to look at the clock);
        it escalates a kill meanwhile."""
        proc = self.proc
        assert proc is not None
        poller = select.poll()
        poller.register(proc.output_fd, select.POLLIN)
        drain_deadline: float | None = None
        while True:
            now = time.monotonic()
            self.escalate(now)
            if drain_deadline is None and proc.poll() is not None:
                drain_deadline = now + drain_s
            if drain_deadline is not None and now >= drain_deadline:
                return
            if not poller.poll(50):
                yield b""
                continue
            data = os.read(proc.output_fd, read_bytes)
            if not data:
                return
            yield data

    def wait(self) -> int:
        """The exit code of the started command (128 + N when killed by signal N), escalating
        a kill meanwhile."""
        assert self.proc is not None
        # bash usually exits right after closing its output: look again soon, then back off.
        delay = 0.0005
        while (code := self.proc.poll()) is None:
            self.escalate(time.monotonic())
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return code if code >= 0 else 128 - code


def spawn(command: str, cwd: str) -> CommandProcess:
    """Start `/bin/bash -c command` in `cwd`; OSError when that cannot be done."""
    os.chdir(cwd)
    _make_inherited_fds_close_on_exec()
    stdin_r, stdin_w = os.pipe()
    output_r, output_w = os.pipe()
    try:
        pid = os.posix_spawn(
            BASH,
            [BASH, "-c", command],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin_r, 0),
                (os.POSIX_SPAWN_DUP2, output_w, 1),
                (os.POSIX_SPAWN_DUP2, output_w, 2),
            ],
            setpgroup=0,
            setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
        )
    except BaseException:
        os.close(stdin_w)
        os.close(output_r)
        raise
    finally:
        os.close(stdin_r)
        os.close(output_w)
    return CommandProcess(pid, stdin_w, output_r)


def _make_inherited_fds_close_on_exec() -> None:
    """Descriptors ≥ 3 left inheritable (passed to the harness by whoever started it) must not
    reach commands. Without /proc (never the case in a sandbox) they are left as they are."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd < 3:
            continue
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.set_inheritable(fd, False)
        except OSError:  # the listing's own descriptor, closed by now
            pass
