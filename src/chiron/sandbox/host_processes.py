"""Host-side process lookups for the local backend: which uids are taken, what to kill.

Owns reading `/proc` on the host. Used when picking a sandbox uid and as the fallback of
`stop()` when a sandbox's supervisor cannot do the killing itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 8192)
    except OSError:
        return None
    finally:
        os.close(fd)


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def process_uids(pid: int) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uid of `pid`; empty if it is gone."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return ()
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            return tuple(int(x) for x in line.split()[1:])
    return ()


def uids_in_use() -> set[int]:
    """The effective uid of every host process (the owner of its /proc entry).

    One stat per process instead of parsing every status file: this runs on the cold-start
    path, and a sandbox's processes all run with their uid as effective uid.
    """
    used: set[int] = set()
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    used.add(entry.stat(follow_symlinks=False).st_uid)
                except OSError:
                    continue  # the process ended meanwhile
    return used


def pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes running as `uid`."""
    return [pid for pid in _pids() if uid in process_uids(pid) and _alive(pid)]


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def cmdline(pid: int) -> bytes:
    return _read(f"/proc/{pid}/cmdline") or b""


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> bool:
    """True once no pid of `pids` exists (zombies awaiting their parent count as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def kill_uid(uid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process running as `uid` until none is left (catches forks in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            kill_quietly(pid)
        wait_gone(pids, 0.5)
