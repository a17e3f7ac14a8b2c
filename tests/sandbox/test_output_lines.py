"""Line framing of the output log: offsets, the per-line cap, unterminated last lines."""

from __future__ import annotations

import random

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


@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_lines_as_splitting_the_whole_log(seed: int) -> None:
    rng = random.Random(seed)
    log = b"".join(
        rng.choice([b"", b"x" * rng.randrange(1, 12), b"\xc3\xa9\r"]) + b"\n"
        for _ in range(rng.randrange(1, 60))
    ) + b"x" * rng.randrange(0, 9)
    cap = rng.randrange(1, 10)
    expected, offset = [], 7
    for piece in log.split(b"\n")[:-1]:
        offset += len(piece) + 1
        expected.append(OutputLine(piece[:cap], offset, len(piece) if len(piece) > cap else None))
    tail = log.rsplit(b"\n", 1)[-1]
    if tail:
        expected.append(
            OutputLine(tail[:cap], offset + len(tail), len(tail) if len(tail) > cap else None)
        )

    splitter = LineSplitter(7, line_cap=cap)
    seen, start = [], 0
    while start < len(log):
        size = rng.randrange(1, 20)
        seen += splitter.feed(log[start : start + size])
        start += size
    last = splitter.finish()
    assert seen + ([last] if last else []) == expected
    assert splitter.position == 7 + len(log)
