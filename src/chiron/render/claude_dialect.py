"""Claude Code stream-json (`claude -p --output-format stream-json [--include-partial-messages]`).

`assistant` lines carry whole content blocks (text, thinking, tool_use), `user` lines the tool
results, `stream_event` lines the raw API stream (text and thinking deltas) when partial
messages are on, and `result` ends the turn. Tools map onto the shared shape: `Bash` is a
command, the editing tools are file changes, `TodoWrite` is the plan, everything else (Read,
Grep, WebFetch, `mcp__server__tool`, …) is a tool call. The item id of a text is its API message
id, so streamed deltas and the whole block that follows them belong together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chiron.render.dialect_fields import as_dict, as_str, content_text
from chiron.render.turn_builder import TurnBuilder
from chiron.render.ui_events import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    FileChangeEntry,
    PlanStep,
    item_status,
)

CLAUDE_TYPES = frozenset({"system", "assistant", "user", "stream_event", "result"})
_FILE_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})


@dataclass(frozen=True)
class _ToolUse:
    role: str  # command | file | plan | tool
    name: str
    server: str | None
    arguments: dict[str, Any]


class ClaudeReader:
    """Holds what spans lines: the message being streamed and the tool uses awaiting results."""

    def __init__(self) -> None:
        self._streaming_message: str | None = None
        self._tool_uses: dict[str, _ToolUse] = {}
        self._unnamed = 0

    def read(self, kind: str, line: dict[str, Any], turn: TurnBuilder) -> None:
        if kind == "stream_event":
            self._stream_event(as_dict(line.get("event")), turn)
        elif kind == "assistant":
            self._assistant(as_dict(line.get("message")), turn)
        elif kind == "user":
            self._user(as_dict(line.get("message")), turn)
        elif kind == "result":
            result = line.get("result")
            subtype = as_str(line.get("subtype"))
            text = result if isinstance(result, str) else None
            if line.get("is_error") or subtype.startswith("error"):
                error = text or f"harness reported {subtype or 'an error'}"
                turn.harness_ended(FAILED, error=error)
            else:
                turn.harness_ended(COMPLETED, result_text=text)

    def _message_id(self, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        self._unnamed += 1
        return f"claude-message-{self._unnamed}"

    def _stream_event(self, event: dict[str, Any], turn: TurnBuilder) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._streaming_message = self._message_id(as_dict(event.get("message")).get("id"))
        elif kind == "content_block_delta":
            delta = as_dict(event.get("delta"))
            message_id = self._streaming_message or self._message_id(None)
            self._streaming_message = message_id
            if delta.get("type") == "text_delta":
                turn.text_delta(message_id, as_str(delta.get("text")))
            elif delta.get("type") == "thinking_delta":
                turn.reasoning_delta(f"{message_id}:thinking", as_str(delta.get("thinking")))

    def _assistant(self, message: dict[str, Any], turn: TurnBuilder) -> None:
        message_id = self._message_id(message.get("id"))
        content = message.get("content")
        if isinstance(content, str):
            turn.message(message_id, content)
            return
        for block in map(as_dict, content if isinstance(content, list) else []):
            kind = block.get("type")
            if kind == "text":
                turn.message(message_id, as_str(block.get("text")))
            elif kind == "thinking":
                turn.reasoning(f"{message_id}:thinking", as_str(block.get("thinking")))
            elif kind == "tool_use":
                self._tool_use(block, turn)

    def _tool_use(self, block: dict[str, Any], turn: TurnBuilder) -> None:
        tool_id, name = as_str(block.get("id")), as_str(block.get("name"))
        arguments = as_dict(block.get("input"))
        server = None
        if name == "Bash":
            role = "command"
            turn.command_started(tool_id, as_str(arguments.get("command")))
        elif name in _FILE_TOOLS:
            role = "file"
        elif name == "TodoWrite":
            role = "plan"
            todos = map(as_dict, arguments.get("todos") or [])
            turn.plan([_plan_step(todo) for todo in todos])
        else:
            role = "tool"
            # MCP tools are named `mcp__<server>__<tool>`.
            if name.startswith("mcp__") and "__" in name[5:]:
                server, name = name[5:].split("__", 1)
            turn.tool_call(tool_id, server, name, arguments, IN_PROGRESS)
        self._tool_uses[tool_id] = _ToolUse(role, name, server, arguments)

    def _user(self, message: dict[str, Any], turn: TurnBuilder) -> None:
        content = message.get("content")
        for block in map(as_dict, content if isinstance(content, list) else []):
            if block.get("type") != "tool_result":
                continue
            tool_id = as_str(block.get("tool_use_id"))
            use = self._tool_uses.pop(tool_id, None)
            if use is None:
                continue
            text = content_text(block.get("content"))
            failed = bool(block.get("is_error"))
            status = FAILED if failed else COMPLETED
            if use.role == "command":
                turn.command_finished(
                    tool_id, as_str(use.arguments.get("command")), status, output=text
                )
            elif use.role == "file":
                path = as_str(use.arguments.get("file_path") or use.arguments.get("notebook_path"))
                # Write both creates and overwrites; its result says which ("File created …").
                kind = "add" if use.name == "Write" and "created" in text else "update"
                turn.file_change(tool_id, [FileChangeEntry(path, kind)] if path else [], status)
            elif use.role == "tool":
                turn.tool_call(
                    tool_id,
                    use.server,
                    use.name,
                    use.arguments,
                    status,
                    result=None if failed else text or None,
                    error=text or "tool failed" if failed else None,
                )


def _plan_step(todo: dict[str, Any]) -> PlanStep:
    return PlanStep(as_str(todo.get("content")), item_status(todo.get("status"), "pending"))
