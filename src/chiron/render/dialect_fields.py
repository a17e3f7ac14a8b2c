"""Tolerant field readers shared by the dialect readers.

Harness lines are untrusted and their shapes drift between versions: a missing or mistyped
field must degrade to an empty value, never raise in the middle of a live rendering.
"""

from __future__ import annotations

import json
from typing import Any

from chiron.render.ui_events import FileChangeEntry

_CHANGE_KINDS = {"add": "add", "create": "add", "delete": "delete", "update": "update"}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int | None:
    # bool is an int to Python, never an exit code or a duration.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_text(value: Any) -> str | None:
    """`"text"` or `{"message": "text", …}` → the text; anything else → None."""
    if isinstance(value, str):
        return value or None
    message = as_dict(value).get("message")
    return message if isinstance(message, str) and message else None


def file_changes(value: Any) -> list[FileChangeEntry]:
    """`[{"path", "kind"}]`, where kind is `"update"` or `{"type": "update", …}`."""
    entries = []
    for change in value if isinstance(value, list) else []:
        change = as_dict(change)
        kind = change.get("kind")
        if isinstance(kind, dict):
            kind = kind.get("type")
        path = as_str(change.get("path"))
        if path:
            entries.append(FileChangeEntry(path, _CHANGE_KINDS.get(as_str(kind), "update")))
    return entries


def content_text(blocks: Any) -> str:
    """The text of a content-block list (`[{"type": "text", "text": …}, …]`) or a string."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        return ""
    texts = [
        block["text"]
        for block in blocks
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    ]
    return "\n".join(texts)


def tool_result_text(result: Any) -> str | None:
    """A tool result for display: its text blocks when it has any, else compact JSON."""
    if result is None or result == "":
        return None
    if isinstance(result, str):
        return result
    blocks = result.get("content") if isinstance(result, dict) else result
    text = content_text(blocks)
    if text:
        return text
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)
