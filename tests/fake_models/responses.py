"""A fake of the OpenAI Responses API (`POST /v1/responses`), as the codex CLI uses it.

A streamed answer is the event sequence the real API sends (every event carries `type` and an
increasing `sequence_number`, each SSE event is also named by `event:`):
`response.created`, `response.in_progress`, then per output item `response.output_item.added`,
its content events and `response.output_item.done` (the whole item), and finally
`response.completed` with the full response (`id`, `output`, `usage`). No `[DONE]` sentinel.

Output items: a `reasoning` item (summary text) when the reply has reasoning, a `message` with
one `output_text` part when it has text, one `function_call` per tool call (codex's shell tool
is a function named `exec_command` with `{"cmd": ...}` arguments).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.fake_models.base import (
    FakeModelServer,
    ModelRequest,
    Reply,
    ToolCall,
    split_text,
    sse_event,
)

USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 17,
}


def function_call_outputs(request: ModelRequest) -> list[dict[str, Any]]:
    """The `function_call_output` items of a request's `input` (tool results sent back)."""
    items = request.body.get("input")
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]


def input_texts(request: ModelRequest, role: str) -> list[str]:
    """The texts of the request's `input` messages with this role, in order."""
    texts: list[str] = []
    items = request.body.get("input")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("role") != role:
            continue
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return texts


class ResponsesServer(FakeModelServer):
    model_paths = ("/v1/responses",)

    def _model(self, request: ModelRequest) -> str:
        model = request.body.get("model")
        return model if isinstance(model, str) else "fake-model"

    def _items(self, reply: Reply, step: int) -> list[dict[str, Any]]:
        """The finished output items of `reply`."""
        items: list[dict[str, Any]] = []
        if reply.reasoning:
            items.append(
                {
                    "id": f"rs_{step}",
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": reply.reasoning}],
                }
            )
        if reply.text:
            items.append(
                {
                    "id": f"msg_{step}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for index, call in enumerate(reply.tool_calls):
            items.append(_function_call(call, step, index))
        return items

    def _response(
        self, request: ModelRequest, step: int, status: str, output: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": f"resp_{step}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": self._model(request),
            "output": output,
            "error": None,
            "incomplete_details": None,
            "usage": USAGE if status == "completed" else None,
        }

    def encode(self, request: ModelRequest, reply: Reply, step: int) -> Iterator[bytes]:
        sequence = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            return sse_event({"type": kind, "sequence_number": next(sequence), **fields}, kind)

        yield event("response.created", response=self._response(request, step, "in_progress", []))
        yield event(
            "response.in_progress", response=self._response(request, step, "in_progress", [])
        )
        items = self._items(reply, step)
        for output_index, item in enumerate(items):
            yield from self._encode_item(event, reply, item, output_index)
        yield event(
            "response.completed", response=self._response(request, step, "completed", items)
        )

    def _encode_item(
        self, event: Callable[..., bytes], reply: Reply, item: dict[str, Any], output_index: int
    ) -> Iterator[bytes]:
        item_id = item["id"]
        where = {"item_id": item_id, "output_index": output_index}
        if item["type"] == "reasoning":
            yield event(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "summary": []},
            )
            part = {"type": "summary_text", "text": ""}
            yield event(
                "response.reasoning_summary_part.added", **where, summary_index=0, part=part
            )
            for piece in split_text(reply.reasoning, reply.chunks):
                yield event(
                    "response.reasoning_summary_text.delta", **where, summary_index=0, delta=piece
                )
            yield event(
                "response.reasoning_summary_text.done",
                **where,
                summary_index=0,
                text=reply.reasoning,
            )
            yield event(
                "response.reasoning_summary_part.done",
                **where,
                summary_index=0,
                part={"type": "summary_text", "text": reply.reasoning},
            )
        elif item["type"] == "message":
            added = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=output_index, item=added)
            part = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.content_part.added", **where, content_index=0, part=part)
            for piece in split_text(reply.text, reply.chunks):
                yield event(
                    "response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[]
                )
            yield event(
                "response.output_text.done", **where, content_index=0, text=reply.text, logprobs=[]
            )
            yield event(
                "response.content_part.done", **where, content_index=0, part=item["content"][0]
            )
        else:
            added = {**item, "status": "in_progress", "arguments": ""}
            yield event("response.output_item.added", output_index=output_index, item=added)
            arguments = item["arguments"]
            for piece in split_text(arguments, reply.chunks):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, arguments=arguments)
        yield event("response.output_item.done", output_index=output_index, item=item)

    def encode_json(self, request: ModelRequest, reply: Reply, step: int) -> dict[str, Any]:
        return self._response(request, step, "completed", self._items(reply, step))

    def error_body(self, reply: Reply) -> dict[str, Any]:
        return {
            "error": {
                "message": reply.error_message,
                "type": "invalid_request_error" if reply.status < 500 else "server_error",
                "param": None,
                "code": None,
            }
        }


def _function_call(call: ToolCall, step: int, index: int) -> dict[str, Any]:
    return {
        "id": f"fc_{step}_{index}",
        "type": "function_call",
        "status": "completed",
        "call_id": call.call_id or f"call_{step}_{index}",
        "name": call.name,
        "arguments": call.arguments_json(),
    }
