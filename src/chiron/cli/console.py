"""The two Rich consoles of a command: results on stdout, chrome and errors on stderr.

Keeping spinners, thread names and status lines on stderr lets `chiron chat "…" > out.txt`
capture exactly what the agent produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.text import Text


@dataclass(frozen=True)
class Consoles:
    out: Console
    err: Console


def make_consoles() -> Consoles:
    # Made per command, not at import: a console created without a file follows whatever
    # sys.stdout is when it writes (a test runner swaps it).
    return Consoles(out=Console(highlight=False), err=Console(stderr=True, highlight=False))


def print_error(err: Console, message: str) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def local_time(value: Any) -> str:
    """An API timestamp (RFC 3339, UTC) in the reader's time zone; blank when absent."""
    if not isinstance(value, str):
        return ""
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value
