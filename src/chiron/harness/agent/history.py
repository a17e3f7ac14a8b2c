"""The conversation, provider-neutral, persisted under `$HOME/.chiron-harness/` after each step.

Messages are plain JSON objects, one of:

    {"role": "user", "text": str}
    {"role": "assistant", "text": str, "reasoning": str,
     "tool_calls": [{"id": str, "name": str, "arguments": str (raw JSON text)}],
     "thinking_blocks": [Anthropic thinking blocks, kept verbatim for that API]}
    {"role": "tool", "call_id": str, "name": str, "output": str, "is_error": bool}

Every assistant tool call is followed by exactly one `tool` message for it before any other
kind of message, because both APIs reject a conversation where one is missing: a step cut short
(interrupt, crash) gets results saying so (`close_open_tool_calls`).

The state file also holds the harness thread id, so a restarted harness announces the same one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chiron.harness.server import note

Message = dict[str, Any]

STATE_DIR_NAME = ".chiron-harness"
STATE_FILE_NAME = "chiron-agent.json"
STATE_VERSION = 1
INTERRUPTED_RESULT = "interrupted: the tool call did not run to completion"


def state_dir() -> str:
    return os.path.join(os.path.expanduser("~"), STATE_DIR_NAME)


def user_message(text: str) -> Message:
    return {"role": "user", "text": text}


def tool_message(call_id: str, name: str, output: str, *, is_error: bool) -> Message:
    return {
        "role": "tool",
        "call_id": call_id,
        "name": name,
        "output": output,
        "is_error": is_error,
    }


def transcript_messages(transcript: object) -> list[Message]:
    """`session_context.transcript` (`[{"role", "text"}, …]`) as history messages."""
    messages: list[Message] = []
    if not isinstance(transcript, list):
        return messages
    for entry in transcript:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            continue
        if entry.get("role") == "user":
            messages.append(user_message(entry["text"]))
        elif entry.get("role") == "assistant" and entry["text"]:
            messages.append(
                {"role": "assistant", "text": entry["text"], "reasoning": "", "tool_calls": []}
            )
    return messages


class History:
    """The messages and thread id of this sandbox's conversation, saved as one JSON file."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STATE_FILE_NAME)
        self.messages: list[Message] = []
        self.thread_id: str | None = None
        self._save_failed = False

    def load(self) -> bool:
        """Read the saved state; False when there is none (or it cannot be used)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            note(f"chiron agent: ignoring unreadable state {self.path}: {exc}")
            return False
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            note(f"chiron agent: ignoring state {self.path} of an unknown version")
            return False
        messages = state.get("messages")
        thread_id = state.get("thread_id")
        self.messages = (
            [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        )
        self.thread_id = thread_id if isinstance(thread_id, str) else None
        return True

    def save(self) -> None:
        """Write the state atomically; a failure is noted once and the turn goes on."""
        state = {"version": STATE_VERSION, "thread_id": self.thread_id, "messages": self.messages}
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(state, f, ensure_ascii=False, separators=(",", ":"))
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._save_failed:
                note(f"chiron agent: cannot save the conversation to {self.path}: {exc}")
            self._save_failed = True

    def append(self, message: Message) -> None:
        self.messages.append(message)

    def close_open_tool_calls(self) -> None:
        """Give every tool call of the last assistant step a result (see the module docstring)."""
        last = next(
            (
                i
                for i in range(len(self.messages) - 1, -1, -1)
                if self.messages[i].get("role") == "assistant"
            ),
            None,
        )
        if last is None:
            return
        answered = set()
        end = last + 1
        while end < len(self.messages) and self.messages[end].get("role") == "tool":
            answered.add(self.messages[end].get("call_id"))
            end += 1
        missing = [
            tool_message(call["id"], call["name"], INTERRUPTED_RESULT, is_error=True)
            for call in self.messages[last].get("tool_calls") or []
            if call["id"] not in answered
        ]
        self.messages[end:end] = missing
