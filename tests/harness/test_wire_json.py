"""The harness's `_json`-only JSON against the standard library's `json`."""

from __future__ import annotations

import enum
import json
import random
import subprocess
import sys
from typing import Any

import pytest

from chiron.harness import protocol
from chiron.harness.wire_json import dumps, loads
from tests.harness.conftest import PACKAGE_PARENT

VALUES: list[Any] = [
    protocol.turn_completed("thread_1", "turn_1", "completed"),
    protocol.item_completed(
        "t",
        "u",
        protocol.command_execution_item(
            "i", "echo 'ü'", "/workspace", "failed", exit_code=7, aggregated_output="x\n"
        ),
    ),
    "plain",
    'quote " backslash \\ slash /',
    "controls \x00\x01\x08\t\n\x0c\r\x1b\x1f\x7f",
    "ünï € 😀 \u2028\u2029 \ufeff",
    "lone surrogates \ud800 \udfff",
    "",
    0,
    -1,
    2**64,
    -(10**100),
    0.1,
    -0.0,
    1e300,
    1.5e-10,
    123456789.125,
    float("inf"),
    float("-inf"),
    True,
    False,
    None,
    [],
    {},
    [1, [2, [3, [4, {"deep": [None]}]]]],
    (1, "tuple", ()),
    {"b": 1, "a": 2, "": 3, "ü": {"x": []}},
    {1: "int key", 2.5: "float key", None: "null key"},
    {True: "bool key", False: 0},
]


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_is_byte_for_byte_compact_json(value: Any) -> None:
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_dumps_of_subclasses_and_nan_match_json() -> None:
    for value in (Colour.RED, {"k": Colour.RED}, Text("t"), {Text("k"): 1}, float("nan")):
        assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_dumps_refuses_what_json_refuses() -> None:
    for value in ({"x": object()}, {(1, 2): "tuple key"}, b"bytes"):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            dumps(value)


def test_protocol_encode_is_the_old_json_dumps_line() -> None:
    message = protocol.error('bad "thing" ü \x00', will_retry=True)
    old = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    assert protocol.encode(message) == old


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_loads_reads_what_json_writes(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=2)):
        for data in (text, f" \t\r\n{text}\n ", text.encode("utf-8", "surrogatepass")):
            assert repr(loads(data)) == repr(json.loads(data))


VALID_TEXTS = [
    '"\\ud83d\\ude00 \\ud800 \\u00fc \\/ \\b\\f\\n\\r\\t"',
    '{"a": 1, "a": 2}',
    "NaN",
    "[Infinity, -Infinity, 1e400, -1e400, 1E5, 0e0, -0]",
    "1" * 4000,
    '{"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "x"}]}}',
]


@pytest.mark.parametrize("text", VALID_TEXTS)
def test_loads_matches_json_on_tricky_documents(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"bom": "utf-8"}',
        '{"wide": "ü"}'.encode("utf-16"),
        '{"wide": "ü"}'.encode("utf-16-le"),
        '{"wide": "ü"}'.encode("utf-16-be"),
        '{"wide": "ü"}'.encode("utf-32"),
        '{"wide": "ü"}'.encode("utf-32-le"),
        '{"wide": "ü"}'.encode("utf-32-be"),
        "7".encode("utf-16-le"),
        "7".encode("utf-16-be"),
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8: json decodes with surrogatepass
    ],
)
def test_loads_detects_encodings_as_json_does(data: bytes) -> None:
    assert repr(loads(data)) == repr(json.loads(data))


INVALID = [
    "",
    " \n",
    "pwd",
    "echo hi",
    "{",
    "[1, 2",
    "[1,]",
    '{"a" 1}',
    "{'a': 1}",
    '{"a": 1,}',
    "tru",
    "nul",
    "1 2",
    "{} x",
    "01",
    "-",
    "1.",
    ".5",
    "+1",
    "Infinity1",
    '"unterminated',
    '"bad \\x escape"',
    '"raw control \x01"',
    '"\\ud8"',
    "\ufeff{}",
    "1" * 5000,  # over the int-to-str digit limit: int() refuses it
    b"\xff\xfe\xfd",
    b'{"a": "\xc3"}',
]


@pytest.mark.parametrize("data", INVALID, ids=repr)
def test_invalid_input_is_a_value_error(data: str | bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        loads(data)


def _outcome(decode: Any, data: str | bytes) -> str:
    try:
        return repr(decode(data))
    except ValueError:
        return "ValueError"


def test_loads_agrees_with_json_on_mangled_lines() -> None:
    rng = random.Random(20240601)
    seeds = [json.dumps(v) for v in VALUES if v == v] + VALID_TEXTS
    alphabet = '{}[]":,\\ \t\n-+.0123456789eEtrufalsnNI\x00\x1fü\ud800'
    for _ in range(3000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4 and text:
                del text[min(position, len(text) - 1)]
            elif action < 0.8:
                text.insert(position, rng.choice(alphabet))
            else:
                text = text[:position]
        mangled = "".join(text)
        assert _outcome(loads, mangled) == _outcome(json.loads, mangled), mangled
        data = mangled.encode("utf-8", "surrogatepass")
        assert _outcome(loads, data) == _outcome(json.loads, data), data


def test_malformed_json_is_a_value_error_without_the_json_package_loaded() -> None:
    # On Python 3.11 the C scanner then has no JSONDecodeError to raise (it raises
    # SystemError); loads must still say ValueError, as the stdin loop expects.
    script = (
        "import sys\n"
        "from chiron.harness.wire_json import loads\n"
        "for text in ('{foo', '\"open', '[1, 2', '\"\\\\x\"', 'pwd', '1 2'):\n"
        "    try:\n"
        "        loads(text)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise SystemExit(f'no ValueError for {text!r}')\n"
        "print(loads(b'{\"ok\": [1, 2.5, null]}'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-s", "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PYTHONPATH": PACKAGE_PARENT},
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "{'ok': [1, 2.5, None]}\n"
