"""Session events (as the API serves them) → UI events, one turn after another.

Input events are mappings with `event_type` and `payload` (and usually `event_id`,
`execution_id`): the JSON long-poll shape, or SSE frames decoded the same way. A
`session.output.line` payload is the raw harness line; each line is read in its own dialect
(Codex app-server `method`, flat `type`, Claude stream-json), and a line that is not a JSON
object is plain output that never ends a turn.

A turn's `done` comes from the server's terminal event (`session.execution_completed` /
`_failed` / `_cancelled`), which follows the harness's terminal line in the same transaction
and is the final word (the server may cancel, time out or lose the sandbox). `finish()` falls
back to the harness's own ending for a stream of harness lines without server events. After a
`done`, the next event starts a new turn, so a whole session stream can be fed in order.

Coalescing (`coalesce`, applied by `normalize` by default): adjacent `text_delta`,
`reasoning` or `command_output` events of the same item merge into one, so a turn's shape does
not depend on how finely a harness chunked its stream. Live consumers use `feed` and get each
chunk as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from chiron.render.app_server_dialect import read_notification
from chiron.render.claude_dialect import CLAUDE_TYPES, ClaudeReader
from chiron.render.dialect_fields import as_dict, as_int, as_str
from chiron.render.flat_dialect import FLAT_TYPES, read_flat
from chiron.render.turn_builder import TurnBuilder
from chiron.render.ui_events import CommandOutput, Reasoning, TextDelta, UiEvent

OUTPUT_LINE = "session.output.line"
TERMINAL_STATUS = {
    "session.execution_completed": "completed",
    "session.execution_failed": "failed",
    "session.execution_cancelled": "cancelled",
}
_PHASES = {
    "session.execution_queued": ("queued", "queued"),
    "session.execution_started": ("starting", "starting the sandbox"),
    "session.input_flushed": ("running", "waiting for output"),
    "session.execution_adopted": ("resumed", "resumed after a server restart"),
    "session.interrupt_delivered": (
        "interrupting",
        "interrupt delivered, waiting for the turn to stop",
    ),
}


class TurnNormalizer:
    """Feed it a session's events in order; it returns the UI events each one produces."""

    def __init__(self) -> None:
        self._turn = TurnBuilder()
        self._claude = ClaudeReader()

    @property
    def done(self) -> bool:
        """Whether the current turn has ended (its `done` was returned)."""
        return self._turn.done

    def feed(self, event: Mapping[str, Any]) -> list[UiEvent]:
        if self._turn.done:
            self._turn, self._claude = TurnBuilder(), ClaudeReader()
        event_type = event.get("event_type")
        payload = event.get("payload")
        if event_type == OUTPUT_LINE:
            self._line(payload)
        elif isinstance(event_type, str) and event_type in TERMINAL_STATUS:
            fields = _decoded(payload)
            self._turn.execution_ended(
                TERMINAL_STATUS[event_type],
                result_text=as_str(fields.get("result_text")) or None,
                error=as_str(fields.get("error")) or None,
                reason=as_str(fields.get("reason") or fields.get("completion_reason")) or None,
            )
        elif isinstance(event_type, str):
            self._lifecycle(event_type, _decoded(payload))
        return self._turn.drain()

    def feed_line(self, line: str) -> list[UiEvent]:
        """One raw harness stdout line, for callers that read a harness directly."""
        return self.feed({"event_type": OUTPUT_LINE, "payload": line})

    def finish(self) -> list[UiEvent]:
        """The stream is over: end the turn the way the harness said, if it said so."""
        self._turn.finish()
        return self._turn.drain()

    def _line(self, payload: Any) -> None:
        if isinstance(payload, dict):
            message: Any = payload
        else:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                # Not a protocol message (DESIGN.md §7): output like any other, never an end.
                self._turn.output_line(text)
                return
        method = message.get("method")
        kind = message.get("type")
        if isinstance(method, str):
            read_notification(method, as_dict(message.get("params")), self._turn)
        elif isinstance(kind, str) and kind in FLAT_TYPES:
            read_flat(kind, message, self._turn)
        elif isinstance(kind, str) and kind in CLAUDE_TYPES:
            self._claude.read(kind, message, self._turn)

    def _lifecycle(self, event_type: str, payload: dict[str, Any]) -> None:
        if event_type in _PHASES:
            self._turn.status(*_PHASES[event_type])
        elif event_type == "session.sandbox_ready":
            source = as_str(payload.get("source")) or "ready"
            self._turn.status("sandbox_ready", f"sandbox ready ({source}), running")
        elif event_type == "session.output.truncated":
            size = as_int(payload.get("original_bytes"))
            self._turn.status(
                "output_truncated", f"an output line of {size or 'many'} bytes was truncated"
            )
        elif event_type == "session.egress_denied":
            parts = (as_str(payload.get("method")), as_str(payload.get("host")))
            request = " ".join(part for part in parts if part)
            self._turn.status("egress_denied", f"the egress proxy refused {request or 'a request'}")


def normalize(events: Iterable[Mapping[str, Any]], *, merge: bool = True) -> list[UiEvent]:
    """All UI events of a recorded stream, ended with `finish()`; coalesced unless `merge=False`."""
    normalizer = TurnNormalizer()
    out: list[UiEvent] = []
    for event in events:
        out.extend(normalizer.feed(event))
    out.extend(normalizer.finish())
    return coalesce(out) if merge else out


def coalesce(events: Iterable[UiEvent]) -> list[UiEvent]:
    """Merge adjacent text, reasoning and command-output chunks of the same item."""
    out: list[UiEvent] = []
    for event in events:
        last = out[-1] if out else None
        if (
            isinstance(event, TextDelta | Reasoning | CommandOutput)
            and type(last) is type(event)
            and isinstance(last, TextDelta | Reasoning | CommandOutput)
            and last.item_id == event.item_id
        ):
            out[-1] = replace(last, text=last.text + event.text)
        else:
            out.append(event)
    return out


def _decoded(payload: Any) -> dict[str, Any]:
    # A payload straight from the table is still a JSON string.
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return {}
    return as_dict(payload)
