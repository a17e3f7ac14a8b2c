"""Recently committed events per session, kept in memory so live tails skip the database.

Ten clients following one busy turn would otherwise each read every row back from the table.
Only committed events are added, in id order; a session's buffer holds one contiguous run of
ids, and any request the buffer cannot answer exactly (older than it, or a gap because another
process wrote) falls back to the database, which stays the source of truth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from chiron.store.records import EventRecord

# Rough per-event cost beyond the payload (record object, ids, timestamps).
_SIZE_OVERHEAD = 200


class _SessionBuffer:
    __slots__ = ("bytes", "events", "frames", "page")

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        # Wire renderings of events[0:len(frames)], made once and shared by every reader.
        self.frames: list[str] = []
        # The last page joined and encoded, (first id, last id, wire bytes): readers following
        # one session are woken by the same commit and ask for the same page.
        self.page: tuple[int, int, bytes] | None = None
        self.bytes = 0


class RecentEvents:
    def __init__(
        self,
        *,
        max_total_bytes: int = 256 * 1024 * 1024,
        max_bytes_per_session: int = 64 * 1024 * 1024,
    ) -> None:
        self._buffers: OrderedDict[str, _SessionBuffer] = OrderedDict()
        self._max_total_bytes = max_total_bytes
        self._max_bytes = max_bytes_per_session
        self._total_bytes = 0

    def add(self, thread_key: str, records: Sequence[EventRecord]) -> None:
        if not records:
            return
        buffer = self._buffers.get(thread_key)
        if buffer is None:
            buffer = self._buffers[thread_key] = _SessionBuffer()
        else:
            self._buffers.move_to_end(thread_key)
        events = buffer.events
        if events and events[-1].event_id + 1 != records[0].event_id:
            self._drop_front(buffer, len(events))
        added = sum(_SIZE_OVERHEAD + len(r.payload) for r in records)
        events.extend(records)
        buffer.bytes += added
        self._total_bytes += added
        if buffer.bytes > self._max_bytes:
            self._drop_front(buffer, len(events) // 2)
        while self._total_bytes > self._max_total_bytes and len(self._buffers) > 1:
            _, oldest = self._buffers.popitem(last=False)
            self._total_bytes -= oldest.bytes

    def _drop_front(self, buffer: _SessionBuffer, count: int) -> None:
        dropped = sum(_SIZE_OVERHEAD + len(r.payload) for r in buffer.events[:count])
        del buffer.events[:count]
        del buffer.frames[:count]
        buffer.bytes -= dropped
        self._total_bytes -= dropped

    def after(
        self, thread_key: str, cursor: int, *, execution_id: str | None, limit: int
    ) -> tuple[list[EventRecord], int] | None:
        """Events after `cursor` and the id scanned up to, or None to ask the database.

        An empty list means this process wrote nothing newer than `cursor`; whether another
        process did is for the caller to judge.
        """
        located = self._locate(thread_key, cursor)
        if located is None:
            return None
        buffer, start = located
        if start == len(buffer.events):
            return [], cursor
        window = buffer.events[start : start + limit]
        if execution_id is None:
            return window, window[-1].event_id
        return [e for e in window if e.execution_id == execution_id], window[-1].event_id

    def rendered_after(
        self, thread_key: str, cursor: int, *, limit: int, render: Callable[[EventRecord], str]
    ) -> tuple[bytes, int] | None:
        """Like `after` for a whole-session stream, as UTF-8 wire text rendered once per event
        and once per page."""
        located = self._locate(thread_key, cursor)
        if located is None:
            return None
        buffer, start = located
        events = buffer.events
        if start == len(events):
            return b"", cursor
        stop = min(len(events), start + limit)
        first_id, last_id = events[start].event_id, events[stop - 1].event_id
        page = buffer.page
        if page is not None and page[0] == first_id and page[1] == last_id:
            return page[2], last_id
        frames = buffer.frames
        if len(frames) < stop:
            frames.extend(render(event) for event in events[len(frames) : stop])
        wire = "".join(frames[start:stop]).encode()
        buffer.page = (first_id, last_id, wire)
        return wire, last_id

    def _locate(self, thread_key: str, cursor: int) -> tuple[_SessionBuffer, int] | None:
        """The buffer and the index of the event after `cursor` (its length: caught up)."""
        buffer = self._buffers.get(thread_key)
        if buffer is None or not buffer.events:
            return None
        first, last = buffer.events[0].event_id, buffer.events[-1].event_id
        if cursor + 1 < first or cursor > last:
            return None
        return buffer, cursor + 1 - first
