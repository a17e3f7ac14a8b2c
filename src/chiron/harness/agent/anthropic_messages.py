"""The Anthropic Messages API, streamed, through the official `anthropic` SDK.

`reasoning_effort` becomes an extended-thinking budget (`thinking.budget_tokens`):

    none / off / disabled -> no thinking        medium -> 10,000 tokens
    minimal               -> 1,024 (the least)  high   -> 16,000
    low                   -> 4,000              xhigh / max -> 24,000
    a number              -> that many tokens (at least 1,024)

`max_tokens` is the budget plus 8,000 for the answer (8,192 without thinking), so the largest
stays within the 32,000 output tokens of the smallest thinking-capable Claude models.
Thinking blocks come back verbatim in later requests (the API requires them in a tool loop);
when the step that called the tools has none (thinking was off then), thinking stays off for
the request, which the API would otherwise reject.
"""

from __future__ import annotations

import json
from typing import Any, cast

import anthropic
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStopEvent,
    RedactedThinkingBlock,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
)

from chiron.harness.agent.history import Message
from chiron.harness.agent.model_api import (
    CallHandle,
    ModelError,
    StepRequest,
    StepResult,
    StreamSink,
    ToolCallRequest,
)
from chiron.harness.agent.sdk_errors import stream_ended_early
from chiron.harness.agent.sdk_provider import SdkProvider
from chiron.harness.agent.tool_specs import ToolSpec

THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 4000,
    "medium": 10_000,
    "high": 16_000,
    "xhigh": 24_000,
    "max": 24_000,
}
NO_THINKING = frozenset({"none", "off", "disabled"})
MIN_BUDGET = 1024
ANSWER_TOKENS = 8000
MAX_TOKENS_WITHOUT_THINKING = 8192


def thinking_budget(effort: str | None) -> int | None:
    if effort is None or effort.strip().lower() in NO_THINKING:
        return None
    value = effort.strip().lower()
    if value.isdigit():
        if int(value) < MIN_BUDGET:
            raise ModelError(
                f"reasoning_effort {effort!r}: an Anthropic thinking budget needs at least "
                f"{MIN_BUDGET} tokens",
                retryable=False,
            )
        return int(value)
    if value not in THINKING_BUDGETS:
        raise ModelError(
            f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)} or a token "
            f"budget for Anthropic models, got {effort!r}",
            retryable=False,
        )
    return THINKING_BUDGETS[value]


def tool_input(raw: str) -> dict[str, Any]:
    """A tool call's input for the history; `{}` for a malformed one (its result says why)."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _replayable(block: dict[str, Any]) -> bool:
    # A thinking block cut short (interrupt) has no signature and would be rejected.
    if block.get("type") == "thinking":
        return bool(block.get("signature"))
    return block.get("type") == "redacted_thinking" and bool(block.get("data"))


def messages_param(messages: list[Message]) -> list[dict[str, Any]]:
    """The history as Messages API turns: same-role neighbours merged, empty text left out."""
    converted: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if converted and converted[-1]["role"] == role:
            converted[-1]["content"].extend(blocks)
        else:
            converted.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        if role == "user":
            add("user", [{"type": "text", "text": message["text"] or "(empty message)"}])
        elif role == "assistant":
            text = message.get("text") or ""
            calls = message.get("tool_calls") or []
            if not text.strip() and not calls:
                continue
            blocks = [b for b in message.get("thinking_blocks") or [] if _replayable(b)]
            if text.strip():
                blocks.append({"type": "text", "text": text})
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["name"],
                    "input": tool_input(call["arguments"]),
                }
                for call in calls
            )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message["call_id"],
                        "content": message["output"] or "(no output)",
                        "is_error": bool(message.get("is_error")),
                    }
                ],
            )
    if converted and converted[0]["role"] == "assistant":
        converted.insert(0, {"role": "user", "content": [{"type": "text", "text": "(earlier)"}]})
    return converted


def thinking_allowed(messages: list[Message]) -> bool:
    """False when the last step called tools without thinking blocks (see module docstring)."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            if not message.get("tool_calls"):
                return True
            return any(_replayable(b) for b in message.get("thinking_blocks") or [])
    return True


def tools_param(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    return [
        {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
        for spec in tools
    ]


class AnthropicMessagesProvider(SdkProvider):
    sdk = anthropic

    def __init__(self, *, base_url: str, api_key: str, timeout_s: float) -> None:
        super().__init__(base_url=base_url, timeout_s=timeout_s)
        self.client = anthropic.Anthropic(**self.client_options(api_key))

    def _stream(self, request: StepRequest, sink: StreamSink, handle: CallHandle) -> StepResult:
        budget = thinking_budget(request.reasoning_effort)
        if budget is not None and not thinking_allowed(request.messages):
            budget = None
        thinking: Any = (
            {"type": "enabled", "budget_tokens": budget} if budget is not None else anthropic.omit
        )
        stream = self.client.messages.create(
            model=request.model,
            max_tokens=MAX_TOKENS_WITHOUT_THINKING if budget is None else budget + ANSWER_TOKENS,
            system=request.system,
            messages=cast(Any, messages_param(request.messages)),
            tools=cast(Any, tools_param(request.tools)),
            thinking=thinking,
            stream=True,
        )
        handle.attach(stream.response)
        result = StepResult()
        blocks: dict[int, dict[str, Any]] = {}
        stopped = False
        with stream:
            for event in stream:
                if handle.aborted:
                    return result
                sink.on_progress()
                if isinstance(event, RawContentBlockStartEvent):
                    self._start_block(event, blocks, result, sink)
                elif isinstance(event, RawContentBlockDeltaEvent):
                    self._delta(event, blocks, result, sink)
                elif isinstance(event, RawMessageDeltaEvent):
                    result.stop_reason = event.delta.stop_reason
                elif isinstance(event, RawMessageStopEvent):
                    stopped = True
        if handle.aborted:
            return result
        if not stopped:
            raise stream_ended_early()
        for _, block in sorted(blocks.items()):
            if block["type"] == "tool_use":
                result.tool_calls.append(ToolCallRequest(block["id"], block["name"], block["json"]))
            elif block["type"] in ("thinking", "redacted_thinking"):
                result.thinking_blocks.append(block)
        return result

    @staticmethod
    def _start_block(
        event: RawContentBlockStartEvent,
        blocks: dict[int, dict[str, Any]],
        result: StepResult,
        sink: StreamSink,
    ) -> None:
        block = event.content_block
        if isinstance(block, ToolUseBlock):
            # The input arrives as `input_json_delta`s; the start block's `input` is empty.
            blocks[event.index] = {
                "type": "tool_use",
                "id": block.id,
                "name": block.name,
                "json": "",
            }
        elif isinstance(block, ThinkingBlock):
            blocks[event.index] = {
                "type": "thinking",
                "thinking": block.thinking,
                "signature": block.signature,
            }
            if block.thinking:
                result.reasoning += block.thinking
                sink.on_reasoning(block.thinking)
        elif isinstance(block, RedactedThinkingBlock):
            blocks[event.index] = {"type": "redacted_thinking", "data": block.data}
        elif isinstance(block, TextBlock):
            blocks[event.index] = {"type": "text"}
            if block.text:
                result.text += block.text
                sink.on_text(block.text)

    @staticmethod
    def _delta(
        event: RawContentBlockDeltaEvent,
        blocks: dict[int, dict[str, Any]],
        result: StepResult,
        sink: StreamSink,
    ) -> None:
        delta = event.delta
        block = blocks.get(event.index, {})
        if isinstance(delta, TextDelta):
            result.text += delta.text
            sink.on_text(delta.text)
        elif isinstance(delta, ThinkingDelta):
            if block.get("type") == "thinking":
                block["thinking"] += delta.thinking
            result.reasoning += delta.thinking
            sink.on_reasoning(delta.thinking)
        elif isinstance(delta, SignatureDelta) and block.get("type") == "thinking":
            block["signature"] += delta.signature
        elif isinstance(delta, InputJSONDelta) and block.get("type") == "tool_use":
            block["json"] += delta.partial_json
