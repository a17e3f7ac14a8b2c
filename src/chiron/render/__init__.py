"""Harness events → normalized UI events, shared by the CLI, the Slack front door and the web.

Owns: reading the three harness stdout dialects (Codex app-server notifications, the flat
`type` dialect, Claude stream-json) out of a session's event stream, and turning them into one
sequence shape (`ui_events`): text deltas and messages, commands with their output, file
changes, tool calls, the plan, reasoning, errors, lifecycle status, the answer and `done`.

Must not touch: anything with side effects. These are pure functions and small classes over
event dicts: no store, runtime, API, sandbox, harness or CLI imports, no I/O, so every front
door can render the same way, live or from a recorded stream.
"""

from chiron.render.event_normalizer import TurnNormalizer, coalesce, normalize
from chiron.render.ui_events import (
    Answer,
    CommandFinished,
    CommandOutput,
    CommandStarted,
    Done,
    Error,
    FileChange,
    FileChangeEntry,
    Message,
    OutputLine,
    Plan,
    PlanStep,
    Reasoning,
    Status,
    TextDelta,
    ToolCall,
    UiEvent,
)

__all__ = [
    "Answer",
    "CommandFinished",
    "CommandOutput",
    "CommandStarted",
    "Done",
    "Error",
    "FileChange",
    "FileChangeEntry",
    "Message",
    "OutputLine",
    "Plan",
    "PlanStep",
    "Reasoning",
    "Status",
    "TextDelta",
    "ToolCall",
    "TurnNormalizer",
    "UiEvent",
    "coalesce",
    "normalize",
]
