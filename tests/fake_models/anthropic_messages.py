"""A fake Anthropic Messages API (`POST /v1/messages`), streaming or not.

Streaming answers follow the real event sequence: `message_start`, a `ping`, then one content
block per part of the reply (`thinking` with `thinking_delta`s and a closing `signature_delta`,
`text` with `text_delta`s, each `tool_use` with `input_json_delta` fragments of its input), each
opened by `content_block_start` and closed by `content_block_stop`, then `message_delta` with the
`stop_reason` and `message_stop`. Every event is sent with its `event:` name, as the API does.
Errors carry the API's error body (`{"type": "error", "error": {"type", "message"}}`).

`/v1/messages/count_tokens` answers too (a rough count), for clients such as the `claude` CLI
that may ask before sending.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from tests.egress.tls_servers import Received
from tests.fake_models.base import (
    FakeModelServer,
    ModelRequest,
    Reply,
    _write_json,
    split_text,
    sse_event,
)

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def tool_use_id(reply: Reply, step: int, index: int) -> str:
    return reply.tool_calls[index].call_id or f"toolu_fake{step:04d}x{index:02d}"


def signature(step: int) -> str:
    return base64.b64encode(f"fake-signature-{step}".encode()).decode()


def tool_input(arguments: dict[str, Any] | str) -> Any:
    """The `input` object of a non-streamed `tool_use` block (a malformed string stays one)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class AnthropicMessagesServer(FakeModelServer):
    model_paths = ("/v1/messages",)

    def error_body(self, reply: Reply) -> dict[str, Any]:
        kind = ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.error_message}}

    def encode(self, request: ModelRequest, reply: Reply, step: int) -> Iterable[bytes]:
        for event in self._events(request, reply, step):
            yield sse_event(event, event["type"])

    def _events(self, request: ModelRequest, reply: Reply, step: int) -> Iterator[dict[str, Any]]:
        message = self._message(request, reply, step)
        yield {
            "type": "message_start",
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {**message["usage"], "output_tokens": 1},
            },
        }
        yield {"type": "ping"}
        index = 0
        if reply.reasoning:
            yield _block_start(index, {"type": "thinking", "thinking": "", "signature": ""})
            for piece in split_text(reply.reasoning, reply.chunks):
                yield _block_delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _block_delta(index, {"type": "signature_delta", "signature": signature(step)})
            yield {"type": "content_block_stop", "index": index}
            index += 1
        if reply.text:
            yield _block_start(index, {"type": "text", "text": ""})
            for piece in split_text(reply.text, reply.chunks):
                yield _block_delta(index, {"type": "text_delta", "text": piece})
            yield {"type": "content_block_stop", "index": index}
            index += 1
        for number, call in enumerate(reply.tool_calls):
            yield _block_start(
                index,
                {
                    "type": "tool_use",
                    "id": tool_use_id(reply, step, number),
                    "name": call.name,
                    "input": {},
                },
            )
            for piece in split_text(call.arguments_json(), 3):
                yield _block_delta(index, {"type": "input_json_delta", "partial_json": piece})
            yield {"type": "content_block_stop", "index": index}
            index += 1
        yield {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
        yield {"type": "message_stop"}

    def encode_json(self, request: ModelRequest, reply: Reply, step: int) -> dict[str, Any]:
        return self._message(request, reply, step)

    def _message(self, request: ModelRequest, reply: Reply, step: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            content.append(
                {"type": "thinking", "thinking": reply.reasoning, "signature": signature(step)}
            )
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for number, call in enumerate(reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_use_id(reply, step, number),
                    "name": call.name,
                    "input": tool_input(call.arguments),
                }
            )
        return {
            "id": f"msg_fake{step:04d}",
            "type": "message",
            "role": "assistant",
            "model": request.body.get("model", "fake-model"),
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(request.text),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": _tokens(reply.reasoning + reply.text),
                "service_tier": "standard",
            },
        }

    async def _respond(self, received: Received, writer: asyncio.StreamWriter) -> None:
        if urlsplit(received.target).path != COUNT_TOKENS_PATH:
            await super()._respond(received, writer)
            return
        try:
            body = json.loads(received.body) if received.body else {}
        except ValueError:
            body = {}
        request = ModelRequest(
            received.method, COUNT_TOKENS_PATH, received.headers, body, received.sni
        )
        self.requests.append(request)
        await _write_json(writer, 200, {"input_tokens": _tokens(request.text)})


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
