"""A fake OpenAI Chat Completions API (`POST /v1/chat/completions`), streaming or not.

Streaming answers follow the real wire format: `data:` lines of `chat.completion.chunk`
objects (the first delta carries the role, text arrives as `delta.content` pieces, each tool
call as `delta.tool_calls` pieces keyed by `index`: the first with `id`, `type` and the function
name, the rest with argument fragments), a last chunk with `finish_reason`, a usage chunk when
`stream_options.include_usage` asks for one, then `data: [DONE]`.

`Reply.reasoning` is sent as `delta.reasoning_content`, the field OpenAI-compatible servers
(DeepSeek, vLLM, …) use for reasoning text; OpenAI's own Chat Completions API sends none.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from tests.fake_models.base import FakeModelServer, ModelRequest, Reply, split_text, sse_event

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def call_id(reply: Reply, step: int, index: int) -> str:
    return reply.tool_calls[index].call_id or f"call_{step}_{index}"


class OpenAIChatServer(FakeModelServer):
    model_paths = ("/v1/chat/completions",)

    def error_body(self, reply: Reply) -> dict[str, Any]:
        kind, code = ERROR_TYPES.get(reply.status, ("server_error", None))
        return {
            "error": {"message": reply.error_message, "type": kind, "param": None, "code": code}
        }

    def encode(self, request: ModelRequest, reply: Reply, step: int) -> Iterable[bytes]:
        for chunk in self._chunks(request, reply, step):
            yield sse_event(chunk)
        yield b"data: [DONE]\n\n"

    def _chunks(self, request: ModelRequest, reply: Reply, step: int) -> Iterator[dict[str, Any]]:
        base = {
            "id": f"chatcmpl-fake{step}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.body.get("model", "fake-model"),
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [choice]}

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in split_text(reply.reasoning, reply.chunks):
            yield chunk({"reasoning_content": piece})
        for piece in split_text(reply.text, reply.chunks):
            yield chunk({"content": piece})
        for index, call in enumerate(reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id(reply, step, index),
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in split_text(call.arguments_json(), 3):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        options = request.body.get("stream_options") or {}
        if options.get("include_usage"):
            yield {**base, "choices": [], "usage": _usage(request, reply)}

    def encode_json(self, request: ModelRequest, reply: Reply, step: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": None,
            "annotations": [],
        }
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id(reply, step, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for index, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-fake{step}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body.get("model", "fake-model"),
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": _usage(request, reply),
        }


def _usage(request: ModelRequest, reply: Reply) -> dict[str, int]:
    prompt = len(request.text) // 4
    completion = max(1, len(reply.text) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
