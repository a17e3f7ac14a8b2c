"""Reads harness stdout lines and decides when, and how, a turn ended (DESIGN.md §7).

Three dialects are understood: the Codex app-server notifications every adapter emits
(`{"method": "turn/completed", …}`), the flat `type` dialect (`turn.completed`, `turn.failed`,
`turn.done`) and Claude stream-json (`result`). Lines that are not JSON objects are output
like any other but never end a turn.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Only lines containing one of these can matter; the rest skip JSON parsing entirely.
_OUTPUT_DELTA = b'{"method":"item/commandExecution/outputDelta"'
_INTERESTING = re.compile(
    rb'turn/|turn\.|"error"|"result"|item/completed|item\.completed|thread/started'
    rb'|thread\.started|"assistant"|"system"'
)


@dataclass(frozen=True)
class TurnOutcome:
    status: str  # completed | failed | cancelled
    result_text: str | None = None
    error: str | None = None
    reason: str | None = None
    completion_reason: str | None = None


class TurnTracker:
    """Feed it every line of one turn in order; it returns the outcome on the terminal line."""

    def __init__(self) -> None:
        self.last_answer: str | None = None
        self.harness_thread_id: str | None = None

    def observe(self, line: bytes) -> TurnOutcome | None:
        # Streamed command output is most of a busy turn and can never end it.
        if line.startswith(_OUTPUT_DELTA) or _INTERESTING.search(line) is None:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        method = message.get("method")
        if isinstance(method, str):
            return self._codex(method, _as_dict(message.get("params")))
        kind = message.get("type")
        if isinstance(kind, str):
            return self._flat_or_claude(kind, message)
        return None

    def _codex(self, method: str, params: dict[str, Any]) -> TurnOutcome | None:
        if method == "thread/started":
            self._remember_thread(_as_dict(params.get("thread")).get("id"))
        elif method == "item/completed":
            item = _as_dict(params.get("item"))
            if item.get("type") == "agentMessage" and isinstance(item.get("text"), str):
                self.last_answer = item["text"]
        elif method == "turn/completed":
            turn = _as_dict(params.get("turn"))
            status = turn.get("status")
            if status == "completed":
                return self._completed("completed")
            if status == "interrupted":
                if self.last_answer is None:
                    return TurnOutcome(status="cancelled", reason="interrupted")
                return self._completed("interrupted")
            return self._failed(_error_text(turn.get("error")) or f"turn ended with {status}")
        elif method == "turn/failed":
            return self._failed(_error_text(params.get("error")) or "turn failed")
        elif method == "error" and not params.get("willRetry"):
            return self._failed(_error_text(params.get("error")) or "harness error")
        return None

    def _flat_or_claude(self, kind: str, message: dict[str, Any]) -> TurnOutcome | None:
        if kind == "thread.started":
            self._remember_thread(message.get("thread_id"))
        elif kind == "item.completed":
            item = _as_dict(message.get("item"))
            if item.get("type") in ("agent_message", "agentMessage") and isinstance(
                item.get("text"), str
            ):
                self.last_answer = item["text"]
        elif kind in ("turn.completed", "turn.done"):
            return self._completed("completed")
        elif kind == "turn.failed":
            return self._failed(_error_text(message.get("error")) or "turn failed")
        elif kind == "system" and message.get("subtype") == "init":
            self._remember_thread(message.get("session_id"))
        elif kind == "assistant":
            text = _claude_text(message.get("message"))
            if text:
                self.last_answer = text
        elif kind == "result":
            result = message.get("result")
            if isinstance(result, str):
                self.last_answer = result
            subtype = str(message.get("subtype") or "")
            if message.get("is_error") or subtype.startswith("error"):
                return self._failed(
                    (result if isinstance(result, str) and result else None)
                    or f"harness reported {subtype or 'an error'}"
                )
            return self._completed("completed")
        return None

    def _remember_thread(self, thread_id: Any) -> None:
        if isinstance(thread_id, str) and thread_id:
            self.harness_thread_id = thread_id

    def _completed(self, completion_reason: str) -> TurnOutcome:
        return TurnOutcome(
            status="completed", result_text=self.last_answer, completion_reason=completion_reason
        )

    @staticmethod
    def _failed(error: str) -> TurnOutcome:
        return TurnOutcome(status="failed", error=error, reason="harness_error")


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _error_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])
    return None


def _claude_text(message: Any) -> str | None:
    content = _as_dict(message).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text" and "text" in block
        ]
        return "".join(texts) or None
    return None
