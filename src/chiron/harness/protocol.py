"""Builders for the harness's stdout dialect: Codex app-server notifications (DESIGN.md §7).

Every stdout line is `{"method": "...", "params": {...}}` (no `"jsonrpc"` field). Builders
return plain dicts; `encode` makes the NDJSON line. `output_delta_lines` is the fast path for
command output, where one notification per line must stay cheap at 100,000 lines.
"""

from __future__ import annotations

from chiron.harness.wire_json import dumps, encode_string

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeAlias

    Message: TypeAlias = dict[str, Any]


def notification(method: str, params: dict[str, Any]) -> Message:
    return {"method": method, "params": params}


def encode(message: Message) -> bytes:
    return dumps(message).encode() + b"\n"


def thread_started(thread_id: str) -> Message:
    return notification("thread/started", {"thread": {"id": thread_id}})


def turn_started(thread_id: str, turn_id: str) -> Message:
    return notification(
        "turn/started", {"threadId": thread_id, "turn": {"id": turn_id, "status": "inProgress"}}
    )


def turn_completed(thread_id: str, turn_id: str, status: str) -> Message:
    """`status` is `completed`, `interrupted` or `failed`."""
    return notification(
        "turn/completed", {"threadId": thread_id, "turn": {"id": turn_id, "status": status}}
    )


def item_started(thread_id: str, turn_id: str, item: dict[str, Any]) -> Message:
    return notification("item/started", {"threadId": thread_id, "turnId": turn_id, "item": item})


def item_completed(thread_id: str, turn_id: str, item: dict[str, Any]) -> Message:
    return notification("item/completed", {"threadId": thread_id, "turnId": turn_id, "item": item})


def error(message: str, *, will_retry: bool = False) -> Message:
    return notification("error", {"error": {"message": message}, "willRetry": will_retry})


def command_execution_item(
    item_id: str,
    command: str,
    cwd: str,
    status: str,
    *,
    exit_code: int | None = None,
    aggregated_output: str | None = None,
    duration_ms: int | None = None,
) -> dict[str, Any]:
    """`status` is `inProgress`, `completed` or `failed`."""
    return {
        "id": item_id,
        "type": "commandExecution",
        "command": command,
        "cwd": cwd,
        "status": status,
        "exitCode": exit_code,
        "aggregatedOutput": aggregated_output,
        "durationMs": duration_ms,
    }


def agent_message_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "agentMessage", "text": text}


def output_delta_lines(thread_id: str, turn_id: str, item_id: str, deltas: Iterable[str]) -> bytes:
    """One `item/commandExecution/outputDelta` line per delta, joined, ready to write."""
    head = (
        '{"method":"item/commandExecution/outputDelta","params":{"threadId":'
        f'{encode_string(thread_id)},"turnId":{encode_string(turn_id)},'
        f'"itemId":{encode_string(item_id)},"delta":'
    )
    return "".join(f"{head}{encode_string(delta)}}}}}\n" for delta in deltas).encode()


def turn_failed(thread_id: str, turn_id: str, message: str) -> Message:
    """`turn/completed` with status `failed` and the error that ended the turn."""
    return notification(
        "turn/completed",
        {
            "threadId": thread_id,
            "turn": {"id": turn_id, "status": "failed", "error": {"message": message}},
        },
    )


def turn_error(thread_id: str, turn_id: str, message: str, *, will_retry: bool) -> Message:
    """`error` tied to a turn; without `willRetry` it ends the turn as failed (DESIGN §7)."""
    return notification(
        "error",
        {
            "threadId": thread_id,
            "turnId": turn_id,
            "error": {"message": message},
            "willRetry": will_retry,
        },
    )


def agent_message_delta(thread_id: str, turn_id: str, item_id: str, delta: str) -> Message:
    return notification(
        "item/agentMessage/delta",
        {"threadId": thread_id, "turnId": turn_id, "itemId": item_id, "delta": delta},
    )


def reasoning_delta(thread_id: str, turn_id: str, item_id: str, delta: str) -> Message:
    return notification(
        "item/reasoning/textDelta",
        {"threadId": thread_id, "turnId": turn_id, "itemId": item_id, "delta": delta},
    )


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": [text] if text else []}


def file_change_item(item_id: str, changes: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """`changes`: `{"path", "kind": {"type": "add" | "update" | "delete"}, "diff"}` each."""
    return {"id": item_id, "type": "fileChange", "changes": changes, "status": status}


def tool_call_item(
    item_id: str,
    server: str,
    tool: str,
    arguments: Any,
    status: str,
    *,
    result: Any = None,
    error: str | None = None,
) -> dict[str, Any]:
    """An `mcpToolCall` item: a tool that is neither a command nor a file change."""
    return {
        "id": item_id,
        "type": "mcpToolCall",
        "server": server,
        "tool": tool,
        "arguments": arguments,
        "status": status,
        "result": result,
        "error": None if error is None else {"message": error},
    }
