"""Recorded harness stdout (tests/fixtures/harness_streams/*.jsonl) as the stored event stream.

A fixture holds one harness stdout line per line, exactly as the harness printed it. The
loader replays it the way the server stores a turn: lifecycle events first, then one
`session.output.line` per line up to the terminal line the runtime's own `TurnTracker`
recognises (the pump stores nothing of this execution after it), then the terminal event with
the fields the driver writes (`result_text` from the tracker's outcome, or the error). A
fixture without a terminal line ends like a harness that exited mid-turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chiron.runtime.terminal import TurnOutcome, TurnTracker

STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "harness_streams"
THREAD_KEY = "cli:fixture"
EXECUTION_ID = "exe_fixture"
_TERMINAL_TYPE = {
    "completed": "session.execution_completed",
    "failed": "session.execution_failed",
    "cancelled": "session.execution_cancelled",
}


def fixture_paths() -> list[Path]:
    return sorted(STREAMS.glob("*.jsonl"))


def read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


class _Events:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, event_type: str, payload: Any) -> None:
        if isinstance(payload, dict):
            payload = {"thread_key": THREAD_KEY, "execution_id": EXECUTION_ID, **payload}
        self.events.append(
            {
                "event_id": len(self.events) + 1,
                "thread_key": THREAD_KEY,
                "execution_id": EXECUTION_ID,
                "event_type": event_type,
                "payload": payload,
            }
        )


def stored_events(lines: list[str]) -> tuple[list[dict[str, Any]], TurnOutcome]:
    """The events the API would serve for a turn whose harness printed `lines`."""
    log = _Events()
    log.add("session.execution_queued", {"input_line_count": 1})
    log.add("session.execution_started", {"idle_timeout_ms": 600000, "max_duration_ms": 3600000})
    log.add("session.sandbox_ready", {"sandbox_id": "sbx_1", "source": "cold_create"})
    log.add("session.input_flushed", {"line_count": 1})
    tracker = TurnTracker()
    outcome: TurnOutcome | None = None
    for index, line in enumerate(lines):
        if index == 0:
            log.add("session.first_token", {"latency_ms": 40})
        log.add("session.output.line", line)
        outcome = tracker.observe(line.encode())
        if outcome is not None:
            break
    if outcome is None:
        outcome = TurnOutcome(
            status="failed",
            error="the harness exited before its turn ended",
            reason="sandbox_lost",
        )
    log.add(_TERMINAL_TYPE[outcome.status], _terminal_fields(outcome))
    return log.events, outcome


def _terminal_fields(outcome: TurnOutcome) -> dict[str, Any]:
    # The same fields as the driver's `_finish`.
    if outcome.status == "completed":
        fields: dict[str, Any] = {"completion_reason": outcome.completion_reason}
        if outcome.result_text is not None:
            fields["result_text"] = outcome.result_text
        return fields
    if outcome.status == "failed":
        return {"error": outcome.error, "reason": outcome.reason}
    return {"reason": outcome.reason}
