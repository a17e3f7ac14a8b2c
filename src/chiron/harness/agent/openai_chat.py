"""Any OpenAI-compatible Chat Completions API, streamed, through the official `openai` SDK.

`reasoning_effort` is passed through as the request's `reasoning_effort` (the API checks the
value). Reasoning text is not part of OpenAI's own Chat Completions stream; compatible servers
that stream it as `delta.reasoning_content` or `delta.reasoning` get it shown as reasoning.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

import openai

from chiron.harness.agent.history import Message
from chiron.harness.agent.model_api import (
    CallHandle,
    StepRequest,
    StepResult,
    StreamSink,
    ToolCallRequest,
)
from chiron.harness.agent.sdk_errors import stream_ended_early
from chiron.harness.agent.sdk_provider import SdkProvider
from chiron.harness.agent.tool_specs import ToolSpec


def chat_arguments(raw: str) -> str:
    """Arguments to send back in the history: as received when they are a JSON object.

    A malformed call's arguments are replaced by `{}` (its tool result explains the problem),
    since some compatible servers parse them and would reject the whole request.
    """
    try:
        if isinstance(json.loads(raw), dict):
            return raw
    except ValueError:
        pass
    return "{}"


def chat_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in messages:
        role = message.get("role")
        if role == "user":
            converted.append({"role": "user", "content": message["text"]})
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not message.get("text") and not calls:
                continue
            entry: dict[str, Any] = {"role": "assistant", "content": message.get("text") or None}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {
                            "name": call["name"],
                            "arguments": chat_arguments(call["arguments"]),
                        },
                    }
                    for call in calls
                ]
            converted.append(entry)
        elif role == "tool":
            converted.append(
                {
                    "role": "tool",
                    "tool_call_id": message["call_id"],
                    "content": message["output"] or "(no output)",
                }
            )
    return converted


def chat_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            },
        }
        for spec in tools
    ]


class OpenAIChatProvider(SdkProvider):
    sdk = openai

    def __init__(self, *, base_url: str, api_key: str, timeout_s: float) -> None:
        super().__init__(base_url=base_url, timeout_s=timeout_s)
        self.client = openai.OpenAI(**self.client_options(api_key))
        # The SDK imports its resource modules on first use (most of a second for `chat`):
        # now, while the provider is made ahead of the first turn.
        self.completions = self.client.chat.completions

    def _stream(self, request: StepRequest, sink: StreamSink, handle: CallHandle) -> StepResult:
        effort: Any = request.reasoning_effort if request.reasoning_effort else openai.omit
        stream = self.completions.create(
            model=request.model,
            messages=cast(Any, chat_messages(request.system, request.messages)),
            tools=cast(Any, chat_tools(request.tools)),
            reasoning_effort=effort,
            stream=True,
        )
        handle.attach(stream.response)
        result = StepResult()
        calls: dict[int, dict[str, str]] = {}
        with stream:
            for chunk in stream:
                if handle.aborted:
                    return result
                sink.on_progress()
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    extra = delta.model_extra or {}
                    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                    if isinstance(reasoning, str) and reasoning:
                        result.reasoning += reasoning
                        sink.on_reasoning(reasoning)
                    if delta.content:
                        result.text += delta.content
                        sink.on_text(delta.content)
                    for piece in delta.tool_calls or []:
                        slot = calls.setdefault(piece.index, {"id": "", "name": "", "args": ""})
                        if piece.id:
                            slot["id"] = piece.id
                        if piece.function is not None:
                            slot["name"] += piece.function.name or ""
                            slot["args"] += piece.function.arguments or ""
                    if choice.finish_reason:
                        result.stop_reason = choice.finish_reason
        if handle.aborted:
            return result
        if result.stop_reason is None:
            raise stream_ended_early()
        result.tool_calls = [
            ToolCallRequest(
                slot["id"] or f"call_{os.urandom(12).hex()}", slot["name"], slot["args"]
            )
            for _, slot in sorted(calls.items())
        ]
        return result
