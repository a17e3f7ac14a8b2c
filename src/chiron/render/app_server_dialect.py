"""Codex app-server notifications (`{"method": ..., "params": ...}`), which every adapter emits.

Field names follow the app-server v2 protocol (camelCase items: `agentMessage`, `reasoning`,
`commandExecution`, `fileChange`, `mcpToolCall`, `dynamicToolCall`, `webSearch`, and a
`todoList` if a harness sends one). Notifications that change nothing a person sees (token
usage, rate limits, diffs, thread and turn starts) are ignored.
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

_REASONING_DELTAS = frozenset({"item/reasoning/textDelta", "item/reasoning/summaryTextDelta"})


def read_notification(method: str, params: dict[str, Any], turn: TurnBuilder) -> None:
    if method == "item/agentMessage/delta":
        turn.text_delta(as_str(params.get("itemId")), as_str(params.get("delta")))
    elif method == "item/commandExecution/outputDelta":
        turn.command_output(as_str(params.get("itemId")), as_str(params.get("delta")))
    elif method in _REASONING_DELTAS:
        turn.reasoning_delta(as_str(params.get("itemId")), as_str(params.get("delta")))
    elif method == "item/reasoning/summaryPartAdded":
        # Summary parts are paragraphs; the first needs no separator.
        if as_int(params.get("summaryIndex")):
            turn.reasoning_delta(as_str(params.get("itemId")), "\n\n")
    elif method == "item/started":
        _item_started(as_dict(params.get("item")), turn)
    elif method in ("item/completed", "item/updated"):
        item = as_dict(params.get("item"))
        if method == "item/completed":
            _item_completed(item, turn)
        elif item.get("type") == "todoList":
            _todo_list(item, turn)
    elif method == "turn/plan/updated":
        steps = [
            PlanStep(as_str(step.get("step")), item_status(step.get("status"), "pending"))
            for step in map(as_dict, params.get("plan") or [])
        ]
        turn.plan(steps, as_str(params.get("explanation")) or None)
    elif method == "error":
        message = error_text(params.get("error")) or "harness error"
        will_retry = bool(params.get("willRetry"))
        turn.error(message, will_retry=will_retry)
        if not will_retry:
            turn.harness_ended(FAILED, error=message)
    elif method == "turn/completed":
        completed = as_dict(params.get("turn"))
        status = as_str(completed.get("status")) or "completed"
        turn.harness_ended(status, error=error_text(completed.get("error")))
    elif method == "turn/failed":
        turn.harness_ended(FAILED, error=error_text(params.get("error")) or "turn failed")


def _item_started(item: dict[str, Any], turn: TurnBuilder) -> None:
    kind, item_id = item.get("type"), as_str(item.get("id"))
    if kind == "commandExecution":
        turn.command_started(item_id, as_str(item.get("command")))
    elif kind in ("mcpToolCall", "dynamicToolCall", "webSearch"):
        _tool_call(item, turn, IN_PROGRESS)
    elif kind == "todoList":
        _todo_list(item, turn)


def _item_completed(item: dict[str, Any], turn: TurnBuilder) -> None:
    kind, item_id = item.get("type"), as_str(item.get("id"))
    if kind == "agentMessage":
        turn.message(item_id, as_str(item.get("text")))
    elif kind == "reasoning":
        parts = item.get("summary") or item.get("content") or []
        turn.reasoning(item_id, "\n\n".join(part for part in parts if isinstance(part, str)))
    elif kind == "commandExecution":
        exit_code = as_int(item.get("exitCode"))
        fallback = COMPLETED if exit_code in (None, 0) else FAILED
        turn.command_finished(
            item_id,
            as_str(item.get("command")),
            item_status(item.get("status"), fallback),
            exit_code=exit_code,
            output=as_str(item.get("aggregatedOutput")),
            duration_ms=as_int(item.get("durationMs")),
        )
    elif kind == "fileChange":
        turn.file_change(
            item_id, file_changes(item.get("changes")), item_status(item.get("status"), COMPLETED)
        )
    elif kind in ("mcpToolCall", "dynamicToolCall", "webSearch"):
        _tool_call(item, turn, None)
    elif kind == "todoList":
        _todo_list(item, turn)


def _tool_call(item: dict[str, Any], turn: TurnBuilder, status: str | None) -> None:
    kind = item.get("type")
    arguments: Any
    if kind == "webSearch":
        tool, server, arguments = "web_search", None, {"query": as_str(item.get("query"))}
    else:
        tool = as_str(item.get("tool"))
        server = as_str(item.get("server")) or None
        arguments = item.get("arguments")
    if status is None:
        failed = item.get("error") or item.get("success") is False
        status = item_status(item.get("status"), FAILED if failed else COMPLETED)
    result = item.get("result") if kind != "dynamicToolCall" else item.get("contentItems")
    turn.tool_call(
        as_str(item.get("id")),
        server,
        tool,
        arguments,
        status,
        result=tool_result_text(result),
        error=error_text(item.get("error")),
    )


def _todo_list(item: dict[str, Any], turn: TurnBuilder) -> None:
    steps = [
        PlanStep(as_str(entry.get("text")), COMPLETED if entry.get("completed") else "pending")
        for entry in map(as_dict, item.get("items") or [])
    ]
    turn.plan(steps)
