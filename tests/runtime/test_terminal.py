"""Terminal rules of DESIGN.md §7, for every dialect the pump understands."""

from __future__ import annotations

import json

from chiron.runtime.terminal import TurnTracker


def feed(*messages: object) -> tuple[TurnTracker, object]:
    tracker = TurnTracker()
    outcome = None
    for message in messages:
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        outcome = tracker.observe(line) or outcome
    return tracker, outcome


def test_codex_completed_takes_last_answer_as_result() -> None:
    tracker, outcome = feed(
        {"method": "thread/started", "params": {"thread": {"id": "thr_1"}}},
        {"method": "item/completed", "params": {"item": {"type": "agentMessage", "text": "a"}}},
        {"method": "item/completed", "params": {"item": {"type": "agentMessage", "text": "b"}}},
        {"method": "turn/completed", "params": {"turn": {"status": "completed"}}},
    )
    assert outcome is not None
    assert (outcome.status, outcome.result_text) == ("completed", "b")  # type: ignore[attr-defined]
    assert tracker.harness_thread_id == "thr_1"


def test_interrupted_without_answer_is_cancelled_with_answer_completed() -> None:
    _, outcome = feed({"method": "turn/completed", "params": {"turn": {"status": "interrupted"}}})
    assert outcome.status == "cancelled"  # type: ignore[attr-defined]
    _, outcome = feed(
        {"method": "item/completed", "params": {"item": {"type": "agentMessage", "text": "x"}}},
        {"method": "turn/completed", "params": {"turn": {"status": "interrupted"}}},
    )
    assert outcome.status == "completed"  # type: ignore[attr-defined]


def test_error_without_will_retry_fails_and_with_it_does_not() -> None:
    _, outcome = feed({"method": "error", "params": {"error": {"message": "x"}, "willRetry": True}})
    assert outcome is None
    _, outcome = feed({"method": "error", "params": {"error": {"message": "boom"}}})
    assert (outcome.status, outcome.error) == ("failed", "boom")  # type: ignore[attr-defined]
    _, outcome = feed({"method": "turn/failed", "params": {}})
    assert outcome.status == "failed"  # type: ignore[attr-defined]


def test_flat_dialect() -> None:
    tracker, outcome = feed(
        {"type": "thread.started", "thread_id": "t9"},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "done"}},
        {"type": "turn.completed"},
    )
    assert (outcome.status, outcome.result_text) == ("completed", "done")  # type: ignore[attr-defined]
    assert tracker.harness_thread_id == "t9"
    _, outcome = feed({"type": "turn.failed", "error": {"message": "nope"}})
    assert (outcome.status, outcome.error) == ("failed", "nope")  # type: ignore[attr-defined]
    _, outcome = feed({"type": "turn.done"})
    assert outcome.status == "completed"  # type: ignore[attr-defined]


def test_claude_result_subtypes_and_is_error() -> None:
    _, outcome = feed({"type": "result", "subtype": "success", "result": "hi"})
    assert (outcome.status, outcome.result_text) == ("completed", "hi")  # type: ignore[attr-defined]
    _, outcome = feed({"type": "result", "subtype": "error_max_turns"})
    assert outcome.status == "failed"  # type: ignore[attr-defined]
    _, outcome = feed({"type": "result", "subtype": "success", "is_error": True, "result": "bad"})
    assert (outcome.status, outcome.error) == ("failed", "bad")  # type: ignore[attr-defined]


def test_non_json_and_non_object_lines_never_end_a_turn() -> None:
    _, outcome = feed(
        b"turn/completed but not json",
        b'["turn/completed"]',
        b'"result"',
        b"{broken json turn/completed",
    )
    assert outcome is None


def test_output_that_merely_mentions_terminal_words_is_not_terminal() -> None:
    delta = {
        "method": "item/commandExecution/outputDelta",
        "params": {"delta": '{"method":"turn/completed","params":{"turn":{"status":"completed"}}}'},
    }
    _, outcome = feed(delta)
    assert outcome is None
