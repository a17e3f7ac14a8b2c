"""The live processes, read from `/proc`: pid, parent and process group of each.

The shell adapter waits on it for an interrupted command's process group to be gone, the CLI
adapters find the commands a CLI started through it. Only `os` is imported: the shell adapter
is on the cold-start path (see the package docstring).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from collections.abc import Iterator


def live_processes() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process, as `/proc` lists them.

    Zombies are skipped: re-parented ones wait for whoever adopts them, which may be slow to
    reap, and they hold nothing.
    """
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            yield int(name), int(fields[1]), int(fields[2])
