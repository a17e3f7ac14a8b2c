"""Splitting the raw output log into `OutputLine`s with a per-line memory cap.

Owns line framing and offsets: `end_offset` of a line is the log offset just past its newline,
so a reader can resume exactly there. A line longer than the cap keeps only its first
`line_cap` bytes in memory; its full length goes into `original_bytes`.
"""

from __future__ import annotations

from chiron.sandbox.backend import OutputLine


class LineSplitter:
    def __init__(self, offset: int, line_cap: int) -> None:
        if line_cap < 1:
            raise ValueError(f"line_cap must be >= 1, got {line_cap}")
        self.position = offset
        self._cap = line_cap
        self._kept = bytearray()
        self._length = 0

    def feed(self, data: bytes) -> list[OutputLine]:
        """Consume `data` (the log bytes at `position`); return the lines it completed."""
        lines: list[OutputLine] = []
        view = memoryview(data)
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            stop = len(data) if newline < 0 else newline
            room = self._cap - len(self._kept)
            if room > 0:
                self._kept += view[start : min(stop, start + room)]
            self._length += stop - start
            if newline < 0:
                self.position += stop - start
                break
            self.position += stop - start + 1
            lines.append(self._take())
            start = newline + 1
        return lines

    def finish(self) -> OutputLine | None:
        """The unterminated last line at EOF, if any."""
        return self._take() if self._length else None

    def _take(self) -> OutputLine:
        line = OutputLine(
            data=bytes(self._kept),
            end_offset=self.position,
            original_bytes=self._length if self._length > self._cap else None,
        )
        self._kept.clear()
        self._length = 0
        return line
