"""Addon: no real value reaches a sandbox in a response (DESIGN.md §8, "response scrubber").

Every value the listener holds (in the forms `ScrubTable` knows) is replaced by its stand-in
in response headers and bodies, from any host: an echoing server shows the sandbox only the
placeholder.

Bodies are handled two ways:
- small bodies of known length are buffered by mitmproxy and scrubbed whole (decoded first,
  whatever their content-encoding);
- `text/event-stream`, bodies of unknown length and large bodies are streamed through a
  `StreamScrubber` chunk by chunk, never buffered: gzip/deflate are decoded on the way and
  the response is re-framed as chunked (its length changes). A streamed body in a coding the
  scrubber cannot read is cut rather than passed unread (the swap addon asks upstream for
  readable codings only, so this should not happen).

Streamed responses also count their bytes for the audit record here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from mitmproxy import http
from mitmproxy.net.http.http1 import expected_http_body_size

from chiron.egress.flow_note import FlowNote, kill, note_of
from chiron.egress.listener_policy import ListenerPolicy
from chiron.egress.stream_scrubber import ScrubTable, StreamScrubber

Decoder = Callable[[bytes], bytes]
TableSource = Callable[[ListenerPolicy], ScrubTable]


class ScrubAddon:
    """`tables` gives a listener's table (default: its policy's); the proxy passes one that
    adds minted OAuth tokens."""

    def __init__(self, tables: TableSource | None = None) -> None:
        self._tables = tables

    def _table(self, note: FlowNote) -> ScrubTable | None:
        if note.policy is None:
            return None
        return note.policy.scrub if self._tables is None else self._tables(note.policy)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        note = note_of(flow)
        if response is None or note is None:
            return
        table = self._table(note)
        if table:
            response.headers.fields = tuple(
                (name, table.scrub(value)) for name, value in response.headers.fields
            )
        if not (response.stream or _should_stream(flow, response)):
            return
        if not table:
            response.stream = _Counting(note)
            return
        decoder: Decoder | None = None
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding not in ("", "identity"):
            decoder = _decoder(coding)
            if decoder is None:
                kill(flow)
                return
            del response.headers["content-encoding"]
        response.headers.pop("content-length", None)
        if flow.request.http_version == "HTTP/1.1":
            response.headers["transfer-encoding"] = "chunked"
        response.stream = _Scrubbing(table.stream(), decoder, note)

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        note = note_of(flow)
        if response is None or note is None or response.stream:
            return
        note.response_bytes = len(response.raw_content or b"")
        table = self._table(note)
        if not table or not response.raw_content:
            return
        try:
            content = response.get_content(strict=True)
        except ValueError:
            content = None
        if content is None:
            # Undecodable: the scrubber cannot look inside, so the sandbox does not get it.
            flow.response = http.Response.make(
                502, b"egress proxy: unreadable response encoding\n", {"content-type": "text/plain"}
            )
            return
        if table.contains_value(content):
            response.content = table.scrub(content)
            note.response_bytes = len(response.raw_content or b"")


def _should_stream(flow: http.HTTPFlow, response: http.Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "text/event-stream":
        return True
    try:
        expected = expected_http_body_size(flow.request, response)
    except ValueError:
        return True
    return expected is None or expected < 0


class _Counting:
    """Passes a streamed body through unchanged, counting it."""

    def __init__(self, note: FlowNote) -> None:
        self._note = note

    def __call__(self, chunk: bytes) -> bytes:
        self._note.response_bytes += len(chunk)
        return chunk


class _Scrubbing:
    """Decodes (when needed) and scrubs a streamed body; never returns an empty chunk, which
    chunked framing would read as the end of the body."""

    def __init__(self, scrubber: StreamScrubber, decoder: Decoder | None, note: FlowNote) -> None:
        self._scrubber = scrubber
        self._decoder = decoder
        self._note = note

    def __call__(self, chunk: bytes) -> list[bytes]:
        if chunk:
            data = self._decoder(chunk) if self._decoder is not None else chunk
            out = self._scrubber.feed(data) if data else b""
        else:  # end of the body
            out = self._scrubber.finish()
        self._note.response_bytes += len(out)
        return [out] if out else []


def _decoder(coding: str) -> Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if coding == "deflate":
        return _Deflate()
    return None


class _Deflate:
    """HTTP `deflate` is zlib-wrapped, though some servers send it raw."""

    def __init__(self) -> None:
        self._inflater: zlib._Decompress | None = None

    def __call__(self, chunk: bytes) -> bytes:
        if self._inflater is None:
            raw = (chunk[0] & 0x0F) != 8 if chunk else False
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        return self._inflater.decompress(chunk)
