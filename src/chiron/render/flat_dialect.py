"""The flat `type` dialect (`codex exec --json`): `thread.started`, `item.completed`, `turn.failed`.

Items are snake_case (`agent_message`, `command_execution`, `todo_list`, …) and arrive whole:
nothing streams, so the builder sends each message and command output as one piece. An
`error` item is a warning the turn survives; a top-level `error` is what `codex exec` sends
just before `turn.failed`.
"""

from __future__ import annotations

from typing import Any

from chiron.render.dialect_fields import (
    as_dict,
    as_int,
    as_str,
    error_text,
    file_changes,
    tool_result_text,
)
from chiron.render.turn_builder import TurnBuilder
from chiron.render.ui_events import COMPLETED, FAILED, IN_PROGRESS, PlanStep, item_status

FLAT_TYPES = frozenset(
    {
        "thread.started",
        "turn.started",
        "turn.completed",
        "turn.done",
        "turn.failed",
        "item.started",
        "item.updated",
        "item.completed",
        "error",
    }
)


def read_flat(kind: str, message: dict[str, Any], turn: TurnBuilder) -> None:
    if kind in ("item.started", "item.updated", "item.completed"):
        _item(kind, as_dict(message.get("item")), turn)
    elif kind in ("turn.completed", "turn.done"):
        turn.harness_ended(COMPLETED)
    elif kind == "turn.failed":
        turn.harness_ended(FAILED, error=error_text(message.get("error")) or "turn failed")
    elif kind == "error":
        turn.error(error_text(message) or "harness error", will_retry=False)


def _item(event: str, item: dict[str, Any], turn: TurnBuilder) -> None:
    kind, item_id = item.get("type"), as_str(item.get("id"))
    completed = event == "item.completed"
    if kind == "todo_list":
        steps = [
            PlanStep(as_str(entry.get("text")), COMPLETED if entry.get("completed") else "pending")
            for entry in map(as_dict, item.get("items") or [])
        ]
        turn.plan(steps)
    elif kind == "command_execution":
        if not completed:
            turn.command_started(item_id, as_str(item.get("command")))
            return
        exit_code = as_int(item.get("exit_code"))
        turn.command_finished(
            item_id,
            as_str(item.get("command")),
            item_status(item.get("status"), COMPLETED if exit_code in (None, 0) else FAILED),
            exit_code=exit_code,
            output=as_str(item.get("aggregated_output")),
        )
    elif kind in ("mcp_tool_call", "web_search"):
        arguments: Any
        if kind == "web_search":
            server, tool, arguments = None, "web_search", {"query": as_str(item.get("query"))}
        else:
            server = as_str(item.get("server")) or None
            tool, arguments = as_str(item.get("tool")), item.get("arguments")
        fallback = FAILED if item.get("error") else COMPLETED
        turn.tool_call(
            item_id,
            server,
            tool,
            arguments,
            item_status(item.get("status"), fallback) if completed else IN_PROGRESS,
            result=tool_result_text(item.get("result")) if completed else None,
            error=error_text(item.get("error")),
        )
    elif not completed:
        return
    elif kind in ("agent_message", "agentMessage"):
        turn.message(item_id, as_str(item.get("text")))
    elif kind == "reasoning":
        turn.reasoning(item_id, as_str(item.get("text")))
    elif kind == "file_change":
        turn.file_change(
            item_id, file_changes(item.get("changes")), item_status(item.get("status"), COMPLETED)
        )
    elif kind == "error":
        turn.error(as_str(item.get("message")) or "harness warning", will_retry=True)
