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
