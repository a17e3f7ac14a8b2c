"""Scripted loopback model servers: the shared part of every dialect's fake.

A fake model server answers each model request with the next `Reply` of its script (the
`default` once the script ran out), or with what a callable in the script returns for that
request. Dialect modules (`openai_chat`, `responses`, `anthropic_messages`) turn a `Reply` into
their wire format; this module holds the script model, the request log and the HTTP plumbing
(an `EchoServer` from the egress tests: HTTPS with its own test CA, or plain HTTP).

A `Reply` can also be a failure: an HTTP error `status` (with `retry_after`), a stream cut after
`cut_after` events, or a server that never answers (`hang`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.egress.tls_servers import EchoServer, HeaderLookup, Received


@dataclass(frozen=True)
class ToolCall:
    name: str
    # A dict is sent as JSON; a str is sent as it is (malformed-argument tests).
    arguments: dict[str, Any] | str
    call_id: str = ""

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """One model step: streamed text and/or tool calls, or a failure."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    status: int = 200
    error_message: str = "scripted failure"
    retry_after: float | None = None
    cut_after: int | None = None  # close the connection after this many SSE events
    hang: bool = False  # accept the request, never answer
    hang_after: int | None = None  # send this many SSE events, then stall (connection open)
    # With `hang_after`: the stall ends when this is set, and the stream goes on.
    resume: asyncio.Event | None = None
    # Split `text` into this many deltas (at least one per character group).
    chunks: int = 3


ScriptEntry = Reply | Callable[["ModelRequest"], Reply]


@dataclass(frozen=True)
class ModelRequest(HeaderLookup):
    """One request as the fake server saw it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: dict[str, Any]
    sni: str | None

    @property
    def text(self) -> str:
        """The whole request body as text, to look for earlier turns or tool results in it."""
        return json.dumps(self.body)


def split_text(text: str, chunks: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, chunks)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def sse_event(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class FakeModelServer(EchoServer):
    """Base of the dialect fakes; subclasses implement `model_paths` and `encode`."""

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        script: Iterable[ScriptEntry] = (),
        default: Reply | None = None,
    ) -> None:
        super().__init__(context)
        self.script: list[ScriptEntry] = list(script)
        self.default = default if default is not None else Reply(text="done")
        self.requests: list[ModelRequest] = []
        self._step = 0
        self._hung: list[asyncio.Event] = []

    # -- what dialects implement ---------------------------------------------------------

    model_paths: tuple[str, ...] = ()

    def encode(self, request: ModelRequest, reply: Reply, step: int) -> Iterable[bytes]:
        """The SSE events of a streamed answer to `request`."""
        raise NotImplementedError

    def encode_json(self, request: ModelRequest, reply: Reply, step: int) -> dict[str, Any]:
        """A non-streaming answer (for clients that fall back to one)."""
        raise NotImplementedError

    def error_body(self, reply: Reply) -> dict[str, Any]:
        return {"error": {"message": reply.error_message, "type": "scripted_error"}}

    # -- test helpers --------------------------------------------------------------------

    def model_requests(self) -> list[ModelRequest]:
        return [r for r in self.requests if r.path in self.model_paths]

    def add(self, *entries: ScriptEntry) -> None:
        self.script.extend(entries)

    async def stop(self) -> None:
        for event in self._hung:
            event.set()
        await super().stop()

    # -- HTTP ----------------------------------------------------------------------------

    def _next_reply(self, request: ModelRequest) -> tuple[Reply, int]:
        step = self._step
        self._step += 1
        entry: ScriptEntry = self.script.pop(0) if self.script else self.default
        reply = entry(request) if callable(entry) else entry
        return reply, step

    async def _respond(self, received: Received, writer: asyncio.StreamWriter) -> None:
        path = urlsplit(received.target).path
        try:
            body = json.loads(received.body) if received.body else {}
        except ValueError:
            body = {"_unparsed": received.body.decode("utf-8", "replace")}
        request = ModelRequest(received.method, path, received.headers, body, received.sni)
        self.requests.append(request)
        if path not in self.model_paths:
            await _write_json(writer, 404, {"error": {"message": f"no route {path}"}})
            return
        reply, step = self._next_reply(request)
        if reply.hang:
            released = asyncio.Event()
            self._hung.append(released)
            await released.wait()
            return
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["retry-after"] = str(reply.retry_after)
            await _write_json(writer, reply.status, self.error_body(reply), headers)
            return
        if not body.get("stream"):
            await _write_json(writer, 200, self.encode_json(request, reply, step))
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        for index, event in enumerate(self.encode(request, reply, step)):
            if reply.cut_after is not None and index >= reply.cut_after:
                # A stream cut mid-way: the connection drops without the final chunk.
                writer.transport.abort()
                raise ConnectionResetError("scripted stream cut")
            if reply.hang_after is not None and index == reply.hang_after:
                released = reply.resume or asyncio.Event()
                self._hung.append(released)
                await released.wait()
                if reply.resume is None:
                    return
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _write_json(
    writer: asyncio.StreamWriter,
    status: int,
    document: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    body = json.dumps(document).encode()
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
