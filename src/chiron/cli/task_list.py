"""The work of a turn as a task list: commands, tool calls and file changes with a status mark.

`TaskList` is fed the normalized UI events (`chiron.render`) and keeps one row per task in
the order they started, plus the agent's latest plan. `snapshot()` returns immutable rows, so
a Rich Live display refreshing from another thread never sees a list being changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from chiron.render import (
    CommandFinished,
    CommandStarted,
    FileChange,
    Plan,
    PlanStep,
    ToolCall,
    UiEvent,
)

RUNNING = "in_progress"
_MARKS = {
    "completed": ("✓", "green"),
    "failed": ("✗", "red"),
    "declined": ("⊘", "yellow"),
    "interrupted": ("■", "yellow"),
}
_STEP_MARKS = {"completed": ("☑", "green"), "in_progress": ("◐", "cyan")}
_FILE_VERBS = {"add": "added", "update": "edited", "delete": "deleted"}
_LABEL_CHARS = 120


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    label: str
    status: str
    detail: str = ""

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def render(self, running_mark: Text | None = None) -> Text:
        """One line: mark, label, detail; `running_mark` (a spinner frame) for running rows."""
        if self.running:
            mark = running_mark if running_mark is not None else Text("…", style="cyan")
        else:
            symbol, style = _MARKS.get(self.status, ("•", "dim"))
            mark = Text(symbol, style=style)
        line = Text.assemble(mark, " ", (self.label, "bold" if self.running else ""))
        if self.detail:
            line.append(f" · {self.detail}", style="dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line


class TaskList:
    def __init__(self) -> None:
        self._rows: dict[str, TaskRow] = {}
        self.plan: tuple[PlanStep, ...] = ()

    def update(self, event: UiEvent) -> TaskRow | None:
        """Apply one UI event; returns the row it finished, if it finished one."""
        if isinstance(event, CommandStarted):
            self._rows[event.item_id] = TaskRow(
                event.item_id, _command_label(event.command), RUNNING
            )
        elif isinstance(event, CommandFinished):
            facts = []
            if event.exit_code:
                facts.append(f"exit status {event.exit_code}")
            if event.duration_ms is not None:
                facts.append(f"{event.duration_ms / 1000:.1f}s")
            row = TaskRow(
                event.item_id, _command_label(event.command), event.status, " · ".join(facts)
            )
            self._rows[event.item_id] = row
            return row
        elif isinstance(event, ToolCall):
            label = f"{event.server}.{event.tool}" if event.server else event.tool
            detail = _arguments_summary(event.arguments)
            if event.error:
                detail = _one_line(event.error)
            row = TaskRow(event.item_id, label, event.status, detail)
            self._rows[event.item_id] = row
            return None if row.running else row
        elif isinstance(event, FileChange):
            row = TaskRow(event.item_id, _file_label(event), event.status)
            self._rows[event.item_id] = row
            return row
        elif isinstance(event, Plan):
            self.plan = event.steps
        return None

    def snapshot(self) -> tuple[TaskRow, ...]:
        return tuple(self._rows.values())


def plan_lines(steps: tuple[PlanStep, ...]) -> list[Text]:
    return [
        Text.assemble((mark, style), " ", step.text)
        for step in steps
        for mark, style in [_STEP_MARKS.get(step.status, ("☐", "dim"))]
    ]


def plan_summary(steps: tuple[PlanStep, ...]) -> Text:
    """The plan on one line, for output that is not a terminal."""
    summary = Text("plan: ", style="dim")
    for index, line in enumerate(plan_lines(steps)):
        if index:
            summary.append(" · ", style="dim")
        summary.append_text(line)
    return summary


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > _LABEL_CHARS or "\n" in text.strip():
        return first[:_LABEL_CHARS].rstrip() + "…"
    return first


def _command_label(command: str) -> str:
    return f"$ {_one_line(command)}" if command.strip() else "a command"


def _file_label(event: FileChange) -> str:
    if not event.changes:
        return "changed files"
    verbs = {_FILE_VERBS.get(change.kind, "changed") for change in event.changes}
    verb = verbs.pop() if len(verbs) == 1 else "changed"
    paths = [change.path for change in event.changes]
    shown = ", ".join(paths[:3])
    if len(paths) > 3:
        shown += f" and {len(paths) - 3} more"
    return f"{verb} {shown}"


def _arguments_summary(arguments: Any) -> str:
    if not arguments:
        return ""
    if isinstance(arguments, dict) and len(arguments) == 1:
        (value,) = arguments.values()
        if isinstance(value, str):
            return _one_line(value)
    return _one_line(json.dumps(arguments, ensure_ascii=False, default=str))
