"""Line framing of the output log: offsets, the per-line cap, unterminated last lines."""

from __future__ import annotations

import pytest

from chiron.sandbox.backend import OutputLine
from chiron.sandbox.output_lines import LineSplitter


def test_lines_across_chunk_boundaries_keep_exact_offsets() -> None:
    splitter = LineSplitter(100, line_cap=1024)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\n\nf") == [
        OutputLine(b"abc", 104),
        OutputLine(b"de", 107),
        OutputLine(b"", 108),
    ]
    assert splitter.position == 109
    assert splitter.finish() == OutputLine(b"f", 109)
    assert splitter.finish() is None


def test_a_long_line_keeps_only_its_prefix_and_real_length() -> None:
    splitter = LineSplitter(0, line_cap=4)
    assert splitter.feed(b"abcdefgh") == []
    assert splitter.feed(b"ij\nxy\nlong!") == [
        OutputLine(b"abcd", 11, original_bytes=10),
        OutputLine(b"xy", 14),
    ]
    assert splitter.finish() == OutputLine(b"long", 19, original_bytes=5)


def test_a_line_exactly_at_the_cap_is_not_truncated() -> None:
    assert LineSplitter(0, line_cap=3).feed(b"abc\n") == [OutputLine(b"abc", 4)]


def test_memory_stays_bounded_for_a_huge_line() -> None:
    splitter = LineSplitter(0, line_cap=16)
    for _ in range(64):
        splitter.feed(b"x" * 65536)
    assert len(splitter._kept) == 16
    (line,) = splitter.feed(b"\n")
    assert line.original_bytes == 64 * 65536 and line.end_offset == 64 * 65536 + 1


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LineSplitter(0, line_cap=0)
