"""The in-memory tail buffer answers only what it can answer exactly; the rest goes to the DB."""

from __future__ import annotations

from datetime import UTC, datetime

from chiron.runtime.recent_events import RecentEvents
from chiron.store.records import EventRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def events(first: int, last: int, execution_id: str = "exe_a") -> list[EventRecord]:
    return [
        EventRecord("t:k", i, execution_id, "session.output.line", f"line {i}", NOW)
        for i in range(first, last + 1)
    ]


def test_serves_contiguous_runs_and_defers_what_it_does_not_hold() -> None:
    recent = RecentEvents()
    assert recent.after("t:k", 0, execution_id=None, limit=10) is None
    recent.add("t:k", events(5, 9))
    assert recent.after("t:k", 2, execution_id=None, limit=10) is None  # older than the buffer
    page, scanned = recent.after("t:k", 5, execution_id=None, limit=2)  # type: ignore[misc]
    assert [e.event_id for e in page] == [6, 7] and scanned == 7
    assert recent.after("t:k", 9, execution_id=None, limit=10) == ([], 9)  # caught up
    assert recent.after("t:k", 12, execution_id=None, limit=10) is None  # beyond: ask the DB


def test_a_gap_resets_the_buffer_instead_of_serving_around_it() -> None:
    recent = RecentEvents()
    recent.add("t:k", events(1, 3))
    recent.add("t:k", events(6, 7))  # 4-5 were written elsewhere
    assert recent.after("t:k", 3, execution_id=None, limit=10) is None
    page, _ = recent.after("t:k", 5, execution_id=None, limit=10)  # type: ignore[misc]
    assert [e.event_id for e in page] == [6, 7]


def test_execution_filter_skips_other_executions_but_advances() -> None:
    recent = RecentEvents()
    recent.add("t:k", events(1, 2, "exe_a") + events(3, 4, "exe_b"))
    page, scanned = recent.after("t:k", 0, execution_id="exe_b", limit=10)  # type: ignore[misc]
    assert [e.event_id for e in page] == [3, 4] and scanned == 4


def test_byte_budget_trims_oldest_and_evicts_idle_sessions() -> None:
    recent = RecentEvents(max_total_bytes=25_000, max_bytes_per_session=20_000)
    recent.add("t:k", events(1, 100))  # ~21 KB with overhead: trimmed to its newer half
    assert recent.after("t:k", 0, execution_id=None, limit=1) is None
    assert recent.after("t:k", 99, execution_id=None, limit=1) is not None
    other = [EventRecord("t:o", i, None, "x", "y" * 100, NOW) for i in range(1, 61)]
    recent.add("t:o", other)
    assert recent.after("t:k", 99, execution_id=None, limit=1) is None  # evicted
    assert recent.after("t:o", 59, execution_id=None, limit=1) is not None


def test_rendered_frames_are_made_once_and_shared() -> None:
    recent = RecentEvents()
    recent.add("t:k", events(1, 4))
    calls: list[int] = []

    def render(event: EventRecord) -> str:
        calls.append(event.event_id)
        return f"<{event.event_id}>"

    assert recent.rendered_after("t:k", 0, limit=2, render=render) == (b"<1><2>", 2)
    assert recent.rendered_after("t:k", 0, limit=10, render=render) == (b"<1><2><3><4>", 4)
    assert recent.rendered_after("t:k", 1, limit=10, render=render) == (b"<2><3><4>", 4)
    assert calls == [1, 2, 3, 4]
    assert recent.rendered_after("t:k", 4, limit=10, render=render) == (b"", 4)


def test_readers_at_one_cursor_share_one_page_until_it_changes() -> None:
    recent = RecentEvents()
    recent.add("t:s", events(1, 3))

    def render(event: EventRecord) -> str:
        return f"<{event.event_id}:é>"

    first = recent.rendered_after("t:s", 0, limit=10, render=render)
    second = recent.rendered_after("t:s", 0, limit=10, render=render)
    assert first == ("<1:é><2:é><3:é>".encode(), 3)
    assert second is not None and first is not None and second[0] is first[0]
    recent.add("t:s", events(4, 4))
    assert recent.rendered_after("t:s", 0, limit=10, render=render) == (
        "<1:é><2:é><3:é><4:é>".encode(),
        4,
    )
    assert recent.rendered_after("t:s", 2, limit=1, render=render) == ("<3:é>".encode(), 3)
