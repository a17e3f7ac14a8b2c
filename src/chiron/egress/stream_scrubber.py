"""Turning real secret values back into their stand-ins, in whole bodies and in streams.

A `ScrubTable` knows every value a listener could have put into a request (and the usual
encodings of each: percent-encoded, form-encoded, JSON-escaped) and what to show instead.
`StreamScrubber` applies it chunk by chunk without buffering the stream: it holds back only
a tail that could still become a value once the next chunk arrives, so a value split across
two chunks is still caught, and an SSE event whose end cannot start a value passes at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

# Bytes compared before the full check of a possible partial match at a chunk's end.
_QUICK_PREFIX = 16


def _variants(value: str, stand_in: str) -> list[tuple[bytes, bytes]]:
    forms = [
        (value, stand_in),
        (quote(value, safe=""), quote(stand_in, safe="")),
        (quote_plus(value, safe=""), quote_plus(stand_in, safe="")),
        (json.dumps(value)[1:-1], json.dumps(stand_in)[1:-1]),
        (json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(stand_in)[1:-1]),
        (value.replace("/", "\\/"), stand_in.replace("/", "\\/")),
    ]
    return [(v.encode(), s.encode()) for v, s in forms]


class ScrubTable:
    """Values (in every form it knows) → stand-ins. Empty when there is nothing to scrub."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        mapping: dict[bytes, bytes] = {}
        for value, stand_in in pairs:
            for form, replacement in _variants(value, stand_in):
                mapping.setdefault(form, replacement)
        self._map = mapping
        # Longest first: at one position the regex then prefers the longest value.
        self._patterns = sorted(mapping, key=len, reverse=True)
        self._regex = (
            re.compile(b"|".join(re.escape(p) for p in self._patterns)) if mapping else None
        )
        self.longest = len(self._patterns[0]) if mapping else 0

    def __bool__(self) -> bool:
        return self._regex is not None

    def contains_value(self, data: bytes) -> bool:
        return self._regex is not None and self._regex.search(data) is not None

    def scrub(self, data: bytes) -> bytes:
        """A whole body or header value with every value replaced."""
        if self._regex is None:
            return data
        return self._regex.sub(lambda m: self._map[m.group()], data)

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self)

    # -- used by StreamScrubber ----------------------------------------------------------

    def _finditer(self, data: bytes) -> Iterable[re.Match[bytes]]:
        assert self._regex is not None
        return self._regex.finditer(data)

    def _replacement(self, form: bytes) -> bytes:
        return self._map[form]

    def _may_grow(self, tail: bytes) -> bool:
        """Whether `tail` is a proper prefix of some value form (more data could extend it)."""
        return any(len(p) > len(tail) and p.startswith(tail) for p in self._patterns)

    def _held_from(self, data: bytes, lo: int) -> int:
        """The smallest index >= lo from which `data`'s end could begin a value form."""
        n = len(data)
        held = n
        for pattern in self._patterns:
            head = pattern[:1]
            quick = pattern[:_QUICK_PREFIX]
            i = data.find(head, max(lo, n - len(pattern) + 1))
            while i != -1 and i < held:
                if data.startswith(quick[: n - i], i) and pattern.startswith(data[i:]):
                    held = i
                    break
                i = data.find(head, i + 1)
        return held


class StreamScrubber:
    """`feed` each chunk as it arrives and send what it returns; `finish` at the end."""

    def __init__(self, table: ScrubTable) -> None:
        self._table = table
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        return self._process(self._carry + chunk if self._carry else chunk, final=False)

    def finish(self) -> bytes:
        carry, self._carry = self._carry, b""
        return self._process(carry, final=True) if carry else b""

    def _process(self, data: bytes, *, final: bool) -> bytes:
        table = self._table
        if not table:
            return data
        out: list[bytes] = []
        pos = 0
        cut: int | None = None
        for match in table._finditer(data):
            start = match.start()
            if not final and start + table.longest > len(data) and table._may_grow(data[start:]):
                cut = start  # a longer value may start here: decide with the next chunk
                break
            out.append(data[pos:start])
            out.append(table._replacement(match.group()))
            pos = match.end()
        if cut is None:
            cut = len(data) if final else table._held_from(data, pos)
        out.append(data[pos:cut])
        self._carry = data[cut:]
        return b"".join(out)
