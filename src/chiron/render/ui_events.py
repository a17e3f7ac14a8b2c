"""The normalized UI events a turn is shown from, whichever harness dialect produced it.

Every event is a frozen dataclass with a `kind` (class-level, so it is always right) and a
`to_json()` giving `{"kind": ..., <fields>}` with JSON-ready values. Item ids are the harness's
own ids (Codex item ids, Claude message or tool-use ids), so events of one item can be grouped.

Item statuses use one vocabulary: `in_progress`, `completed`, `failed`, `declined` (the user or
policy refused it) and `interrupted` (the turn ended before the harness reported the item's end).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
DECLINED = "declined"
INTERRUPTED = "interrupted"

_STATUS_SPELLINGS = {
    "inprogress": IN_PROGRESS,
    "in_progress": IN_PROGRESS,
    "pending": "pending",
    "completed": COMPLETED,
    "failed": FAILED,
    "declined": DECLINED,
    "interrupted": INTERRUPTED,
}


def item_status(value: Any, default: str) -> str:
    """A harness status (`inProgress`, `in_progress`, …) in this module's vocabulary."""
    if not isinstance(value, str):
        return default
    return _STATUS_SPELLINGS.get(value.replace("-", "_").lower(), default)


@dataclass(frozen=True)
class UiEvent:
    kind: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind}
        for field in fields(self):
            body[field.name] = _jsonable(getattr(self, field.name))
        return body


@dataclass(frozen=True)
class TextDelta(UiEvent):
    """A piece of an agent message; an item's deltas, joined, are its whole text."""

    kind: ClassVar[str] = "text_delta"
    item_id: str
    text: str


@dataclass(frozen=True)
class Message(UiEvent):
    """An agent message is complete (its deltas were all sent before this)."""

    kind: ClassVar[str] = "message"
    item_id: str
    text: str


@dataclass(frozen=True)
class Answer(UiEvent):
    """The turn's final answer (Markdown): the execution's result text; just before `done`."""

    kind: ClassVar[str] = "answer"
    text: str


@dataclass(frozen=True)
class Reasoning(UiEvent):
    """A piece of the agent's reasoning (summary); joined per item like text deltas."""

    kind: ClassVar[str] = "reasoning"
    item_id: str
    text: str


@dataclass(frozen=True)
class CommandStarted(UiEvent):
    kind: ClassVar[str] = "command_started"
    item_id: str
    command: str


@dataclass(frozen=True)
class CommandOutput(UiEvent):
    """A chunk of a command's merged stdout/stderr, as the harness sent it (may end mid-line)."""

    kind: ClassVar[str] = "command_output"
    item_id: str
    text: str


@dataclass(frozen=True)
class CommandFinished(UiEvent):
    kind: ClassVar[str] = "command_finished"
    item_id: str
    command: str
    status: str
    exit_code: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class FileChangeEntry:
    path: str
    kind: str  # add | update | delete


@dataclass(frozen=True)
class FileChange(UiEvent):
    """Files the agent changed, reported once the change was applied (or failed)."""

    kind: ClassVar[str] = "file_change"
    item_id: str
    changes: tuple[FileChangeEntry, ...]
    status: str


@dataclass(frozen=True)
class ToolCall(UiEvent):
    """A tool call that is neither a command nor a file change (MCP, web search, Claude tools).

    Sent twice per call: `in_progress` when it starts, then its final status with the result.
    `server` is the MCP server, or None for a harness's built-in tool.
    """

    kind: ClassVar[str] = "tool_call"
    item_id: str
    server: str | None
    tool: str
    arguments: Any
    status: str
    result: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class PlanStep:
    text: str
    status: str  # pending | in_progress | completed


@dataclass(frozen=True)
class Plan(UiEvent):
    """The agent's whole current plan (each update replaces the previous one)."""

    kind: ClassVar[str] = "plan"
    steps: tuple[PlanStep, ...]
    explanation: str | None = None


@dataclass(frozen=True)
class Error(UiEvent):
    """An error the harness reported; `will_retry` means the turn goes on regardless."""

    kind: ClassVar[str] = "error"
    message: str
    will_retry: bool = False


@dataclass(frozen=True)
class OutputLine(UiEvent):
    """A harness stdout line that is not a protocol message: plain output, never an ending."""

    kind: ClassVar[str] = "output_line"
    text: str


@dataclass(frozen=True)
class Status(UiEvent):
    """A step of the execution's lifecycle worth showing while waiting (queued, sandbox ready…).

    `phase` is machine-readable (`queued`, `starting`, `sandbox_ready`, `running`, `resumed`,
    `interrupting`, `output_truncated`, `egress_denied`); `text` says it in words.
    """

    kind: ClassVar[str] = "status"
    phase: str
    text: str


@dataclass(frozen=True)
class Done(UiEvent):
    """The turn is over: always the last event of a turn, exactly once.

    `status` is `completed`, `failed` or `cancelled`; `reason` is the completion reason of a
    completed turn (e.g. `interrupted` when it was stopped after answering) or why it failed or
    was cancelled.
    """

    kind: ClassVar[str] = "done"
    status: str
    result_text: str | None = None
    error: str | None = None
    reason: str | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, FileChangeEntry | PlanStep):
        return {field.name: getattr(value, field.name) for field in fields(value)}
    return value
