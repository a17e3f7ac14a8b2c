"""The bottom of the terminal during a turn: the task list, the plan, a preview, the phase.

Rich redraws it about ten times a second from its own thread, from `state`: an immutable value
replaced whole on each update, so that thread reads either the old or the new state, never a
half-updated one, and needs no lock. Printing through the same console while it runs puts
the printed lines above it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from chiron.cli.task_list import TaskRow, plan_lines
from chiron.render import PlanStep

_MAX_ROWS = 12


@dataclass(frozen=True)
class _LiveState:
    rows: tuple[TaskRow, ...] = ()
    plan: tuple[PlanStep, ...] = ()
    preview: tuple[str, ...] = ()
    phase: str = "queued"
    note: str = ""
    final: bool = False


class LiveRegion:
    def __init__(self, console: Console, started: float) -> None:
        self.state = _LiveState()
        self._console = console
        self._started = started
        self._spinner = Spinner("dots", style="cyan")
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=10,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        self._live.start()

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def stop(self) -> None:
        """Leave the task list and plan on screen; drop the spinner line and the preview."""
        self.update(final=True)
        self._live.stop()

    def _render(self) -> RenderableType:
        state = self.state
        frame = self._spinner.render(self._console.get_time())
        mark = frame if isinstance(frame, Text) else Text("…")
        lines: list[Text] = []
        rows = state.rows
        if len(rows) > _MAX_ROWS:
            lines.append(Text(f"… {len(rows) - _MAX_ROWS} earlier tasks", style="dim"))
            rows = rows[-_MAX_ROWS:]
        lines.extend(row.render(mark.copy()) for row in rows)
        if state.plan:
            lines.append(Text("plan", style="bold dim"))
            lines.extend(plan_lines(state.plan))
        if not state.final:
            for preview in state.preview:
                lines.append(Text(preview, style="dim", no_wrap=True, overflow="ellipsis"))
            elapsed = time.monotonic() - self._started
            footer = Text.assemble(mark, " ", state.phase, (f" · {elapsed:.0f}s", "dim"))
            if state.note:
                footer.append(f" · {state.note}", style="yellow")
            lines.append(footer)
        return Group(*lines)
