"""What the control plane adds to a turn's input lines (DESIGN.md §7).

Object lines get `thread_key`, `trace_id` and `session_context` when they lack them. For model
harnesses the context also carries what an agent needs to continue a conversation: the
execution's metadata (model overrides), the harness thread id to resume, the composed system
prompt (overlays' `SYSTEM_PROMPT.md` and the persona's prompt) and, when the turn runs in a new
sandbox of a session that had turns before, the transcript of those turns, because whatever
the harness kept in its old sandbox is gone. Plain-text lines to a model harness become `user`
lines so they carry the context too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from chiron.harness.registry import MODEL_HARNESSES
from chiron.store import execution_queries
from chiron.store.engine import Store
from chiron.store.records import ExecutionRecord, SessionRecord

logger = logging.getLogger(__name__)

# Bounds what a transcript adds to one stdin line; the newest turns are kept.
TRANSCRIPT_MAX_CHARS = 200_000
PERSONA_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class TurnContext:
    def __init__(self, store: Store, overlay_dirs: list[Path]) -> None:
        self._store = store
        self._overlays = overlay_dirs

    async def lines_for(
        self,
        input_lines: list[str],
        session: SessionRecord,
        execution: ExecutionRecord,
        *,
        fresh_sandbox: bool,
    ) -> list[str]:
        """The lines to write to the harness for `execution`."""
        context = _base_context(session, execution.execution_id)
        model_harness = session.harness_type in MODEL_HARNESSES
        if model_harness:
            context["execution_metadata"] = execution.request.get("metadata") or {}
            context["harness_thread_id"] = session.harness_thread_id
            prompt = self.system_prompt(session.persona_id)
            if prompt:
                context["system_prompt"] = prompt
            if fresh_sandbox:
                transcript = await self._transcript(session.thread_key, execution.execution_id)
                if transcript:
                    context["transcript"] = transcript
        out = []
        for line in input_lines:
            message = _as_object(line)
            if message is None:
                if not model_harness:
                    out.append(line)
                    continue
                message = {"type": "user", "message": {"role": "user", "content": line}}
            message.setdefault("thread_key", session.thread_key)
            message.setdefault("trace_id", execution.execution_id)
            message.setdefault("session_context", context)
            out.append(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
        return out

    def system_prompt(self, persona_id: str | None) -> str:
        """Every overlay's SYSTEM_PROMPT.md, then the persona's prompt (last overlay wins)."""
        parts = [text for d in self._overlays if (text := _read(d / "SYSTEM_PROMPT.md"))]
        if persona_id and PERSONA_ID_CHARS.issuperset(persona_id) and persona_id[0] != ".":
            for directory in reversed(self._overlays):
                if text := _read(directory / "personas" / f"{persona_id}.md"):
                    parts.append(text)
                    break
        return "\n\n".join(parts)

    async def _transcript(self, thread_key: str, execution_id: str) -> list[dict[str, str]]:
        async with self._store.read() as conn:
            earlier = await execution_queries.finished_for_session(conn, thread_key)
        turns: list[dict[str, str]] = []
        for record in earlier:
            if record.execution_id == execution_id:
                continue
            texts = [
                text
                for line in record.request.get("input_lines") or []
                if (text := _user_text(line))
            ]
            if texts:
                turns.append({"role": "user", "text": "\n".join(texts)})
            if record.result_text:
                turns.append({"role": "assistant", "text": record.result_text})
        size = 0
        kept: list[dict[str, str]] = []
        for turn in reversed(turns):
            size += len(turn["text"])
            if size > TRANSCRIPT_MAX_CHARS:
                break
            kept.append(turn)
        return list(reversed(kept))


def _base_context(session: SessionRecord, execution_id: str) -> dict[str, Any]:
    return {
        "thread_key": session.thread_key,
        "harness_type": session.harness_type,
        "persona_id": session.persona_id,
        "metadata": session.metadata,
        "execution_id": execution_id,
    }


def _as_object(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _user_text(line: str) -> str:
    """The user text of one input line: its `user` message's text, or the plain line."""
    message = _as_object(line)
    if message is None:
        return line
    if message.get("type") != "user":
        return ""
    content = (
        (message.get("message") or {}).get("content")
        if isinstance(message.get("message"), dict)
        else None
    )
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("overlay file unreadable", extra={"path": str(path), "error": str(exc)})
        return ""
