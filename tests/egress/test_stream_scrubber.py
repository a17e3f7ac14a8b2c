"""The scrubber alone: whole bodies, streams split anywhere, and what it holds back."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from chiron.egress.stream_scrubber import ScrubTable

VALUE = "real-value-7f3a9c1b2d4e"
PLACEHOLDER = "API_KEY"


@pytest.fixture
def table() -> ScrubTable:
    return ScrubTable([(VALUE, PLACEHOLDER), ("second-real-value-99", "OTHER_KEY")])


def stream_all(table: ScrubTable, chunks: list[bytes]) -> tuple[bytes, list[bytes]]:
    scrubber = table.stream()
    emitted = [scrubber.feed(chunk) for chunk in chunks]
    emitted.append(scrubber.finish())
    return b"".join(emitted), emitted


def test_whole_bodies_and_common_encodings(table: ScrubTable) -> None:
    body = f'{{"a": "{VALUE}", "b": "{quote(VALUE)}", "c": {json.dumps(VALUE + "/x")}}}'
    assert table.scrub(body.encode()).decode() == (
        f'{{"a": "{PLACEHOLDER}", "b": "{PLACEHOLDER}", "c": "{PLACEHOLDER}/x"}}'
    )
    assert table.scrub(b"nothing here") == b"nothing here"
    assert table.contains_value(VALUE.encode()) and not table.contains_value(b"API_KEY")


def test_encoded_forms_of_values_with_special_characters() -> None:
    value = 'p@ss/word"with\\specials'
    table = ScrubTable([(value, "PW")])
    for form in (value, quote(value, safe=""), json.dumps(value)[1:-1], value.replace("/", "\\/")):
        assert table.scrub(f"<{form}>".encode()) == b"<PW>"


def test_a_value_split_at_every_position_is_caught(table: ScrubTable) -> None:
    text = f"data: before {VALUE} after\n\n".encode()
    for cut in range(1, len(text)):
        out, _ = stream_all(table, [text[:cut], text[cut:]])
        assert out == f"data: before {PLACEHOLDER} after\n\n".encode(), cut


def test_byte_by_byte(table: ScrubTable) -> None:
    text = f"{VALUE}{VALUE}x second-real-value-99".encode()
    out, _ = stream_all(table, [bytes([b]) for b in text])
    assert out == f"{PLACEHOLDER}{PLACEHOLDER}x OTHER_KEY".encode()


def test_only_a_possible_value_prefix_is_held_back(table: ScrubTable) -> None:
    scrubber = table.stream()
    # An SSE event that ends cleanly passes at once: nothing waits for the next chunk.
    assert scrubber.feed(b"data: one\n\n") == b"data: one\n\n"
    # The start of a value is held until the next chunk decides.
    assert scrubber.feed(b"data: " + VALUE[:5].encode()) == b"data: "
    assert scrubber.feed(b"-not-it\n\n") == VALUE[:5].encode() + b"-not-it\n\n"
    assert scrubber.feed(VALUE[:8].encode()) == b""
    assert scrubber.finish() == VALUE[:8].encode()  # the end of the body releases it


def test_a_longer_value_wins_over_its_prefix() -> None:
    table = ScrubTable([("short-value-1", "SHORT"), ("short-value-1-and-more", "LONG")])
    out, _ = stream_all(table, [b"x short-value-1", b"-and-more y"])
    assert out == b"x LONG y"
    out, _ = stream_all(table, [b"x short-value-1", b" y"])
    assert out == b"x SHORT y"


def test_empty_table_passes_everything() -> None:
    table = ScrubTable([])
    assert not table
    out, emitted = stream_all(table, [b"a", b"b"])
    assert out == b"ab" and emitted == [b"a", b"b", b""]
