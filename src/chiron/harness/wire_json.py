"""JSON for the harness's stdin/stdout lines, through the C accelerator `_json` only.

`import json` costs ~6 ms of the harness's cold start (it pulls in `re` and `enum`); the C
scanner and encoder it wraps are importable on their own. `loads` and `dumps` behave like
`json.loads` and `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, byte for byte
on output; tests/harness/test_wire_json.py holds them to that.

Differences, none visible on the wire: every decoding error is a plain `ValueError` (on Python
3.11 the scanner cannot build its `JSONDecodeError` without `json.decoder` loaded and raises
`SystemError`; later versions import `json.decoder` on that first error), and `dumps` has no
circular-reference check, because the harness only encodes trees it has just built (a cycle
would end in `RecursionError`).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # `typing` stays unimported at run time (see the package docstring)
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes `_json.make_scanner` reads: `json.JSONDecoder()`'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None  # read by `make_scanner` from Python 3.15 on
    parse_float = float
    parse_int = int
    parse_constant = float  # only ever given "NaN", "Infinity" or "-Infinity"


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # a duck-typed context
# make_encoder(markers, default, encoder, indent, key_separator, item_separator, sort_keys,
# skipkeys, allow_nan), unchanged from Python 3.10 to 3.13 at least: what `json.dumps` passes for
# ensure_ascii=False and compact separators, minus the `markers` of the circular check.
_encode = _json.make_encoder(
    None, _unencodable, _json.encode_basestring, None, ":", ",", False, False, True
)

encode_string = _json.encode_basestring
"""A str as a JSON string literal, non-ASCII kept (the fast path for output deltas)."""


def _encoding_of(data: bytes) -> str:
    """The encoding `json.loads` detects for bytes (RFC 4627 §3; BOMs first)."""
    if data.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        return "utf-32"
    if data.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "utf-16"
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if len(data) >= 4:
        if not data[0]:
            return "utf-16-be" if data[1] else "utf-32-be"
        if not data[1]:
            return "utf-16-le" if data[2] or data[3] else "utf-32-le"
    elif len(data) == 2:
        if not data[0]:
            return "utf-16-be"
        if not data[1]:
            return "utf-16-le"
    return "utf-8"


def loads(data: bytes | str) -> Any:
    """One JSON document, surrounded by whitespace at most; ValueError when it is not one."""
    text = data if isinstance(data, str) else data.decode(_encoding_of(data), "surrogatepass")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value at char {exc.value}") from None
    except SystemError:  # see the module docstring
        raise ValueError("malformed JSON") from None
    if len(text.rstrip(_WHITESPACE)) != end:
        raise ValueError(f"Extra data at char {end}")
    return value


def dumps(value: object) -> str:
    """Compact JSON, non-ASCII kept: `json.dumps(value, ensure_ascii=False,
    separators=(",", ":"))`."""
    return "".join(_encode(value, 0))
