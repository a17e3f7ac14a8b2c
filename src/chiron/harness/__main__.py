"""`python -m chiron.harness --adapter NAME`: the sandbox's harness process.

Kept tiny on purpose: it reports readiness before the heavier imports, because the control
plane waits for that signal on the cold-start path and input sent meanwhile waits in the pipe.
"""

from __future__ import annotations

import os
import sys

from chiron.harness.registry import ADAPTERS

READY_FD_VARIABLE = "CHIRON_HARNESS_READY_FD"


def _signal_ready() -> None:
    # Popped so the commands the harness runs never inherit a stale descriptor number.
    value = os.environ.pop(READY_FD_VARIABLE, None)
    if value is None:
        return
    try:
        fd = int(value)
        os.write(fd, b"1")
        os.close(fd)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"harness: cannot signal readiness on fd {value}: {exc}\n")


def _parse_adapter(argv: list[str]) -> str | None:
    if len(argv) == 2 and argv[0] == "--adapter":
        return argv[1]
    if len(argv) == 1 and argv[0].startswith("--adapter="):
        return argv[0].partition("=")[2]
    return None


def main(argv: list[str]) -> int:
    adapter = _parse_adapter(argv)
    if adapter is None or adapter not in ADAPTERS:
        sys.stderr.write(
            f"usage: python -m chiron.harness --adapter {{{','.join(sorted(ADAPTERS))}}} "
            f"(got {' '.join(argv)!r})\n"
        )
        return 2
    _signal_ready()
    from chiron.harness.server import run

    return run(ADAPTERS[adapter])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
