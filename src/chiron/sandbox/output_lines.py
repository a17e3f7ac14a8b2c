"""Splitting the raw output log into `OutputLine`s with a per-line memory cap.

Owns line framing and offsets: `end_offset` of a line is the log offset just past its newline,
so a reader can resume exactly there. A line longer than the cap keeps only its first
`line_cap` bytes in memory; its full length goes into `original_bytes`.
"""

from __future__ import annotations

from itertools import accumulate, repeat

from chiron.sandbox.backend import OutputLine

_PLUS_NEWLINE = (1).__add__


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
        # One C-level split per chunk: this runs for every line of every harness.
        *complete, rest = data.split(b"\n")
        lines: list[OutputLine] = []
        cap = self._cap
        position = self.position
        if complete and self._length:
            # The first piece ends the line carried over from earlier chunks.
            position += len(complete[0]) + 1
            self._keep(complete[0])
            lines.append(self._take(position))
            complete = complete[1:]
        if complete and max(map(len, complete)) <= cap:
            # No line to cut (the usual case): offsets and records made by iteration in C.
            ends = accumulate(map(_PLUS_NEWLINE, map(len, complete)), initial=position)
            next(ends)
            lines += map(tuple.__new__, repeat(OutputLine), zip(complete, ends, repeat(None)))
            position = lines[-1].end_offset
            complete = []
        for part in complete:
            length = len(part)
            position += length + 1
            if length > cap:
                lines.append(OutputLine(part[:cap], position, length))
            else:
                lines.append(OutputLine(part, position, None))
        if rest:
            position += len(rest)
            self._keep(rest)
        self.position = position
        return lines

    def _keep(self, piece: bytes) -> None:
        room = self._cap - len(self._kept)
        if room > 0:
            self._kept += piece[:room]
        self._length += len(piece)

    def finish(self) -> OutputLine | None:
        """The unterminated last line at EOF, if any."""
        return self._take(self.position) if self._length else None

    def _take(self, end_offset: int) -> OutputLine:
        line = OutputLine(
            data=bytes(self._kept),
            end_offset=end_offset,
            original_bytes=self._length if self._length > self._cap else None,
        )
        self._kept.clear()
        self._length = 0
        return line
