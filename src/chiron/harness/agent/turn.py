"""One turn of the agent loop, on its own thread, which owns every notification of the turn.

Per step: steering that arrived joins the history, the model is called (streamed text and
reasoning become items as they arrive), its tool calls run, and their results go back at the
next step. A step without tool calls is the final answer. Transient API failures are retried
with back-off (`error` with `willRetry: true` says so); other failures, the step limit and a
model that keeps sending malformed tool calls fail the turn. An interrupt aborts the model call
or kills the running command and ends the turn as `interrupted`, the history kept valid for
both APIs (see `history`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from chiron.harness import protocol
from chiron.harness.agent import config as agent_config
from chiron.harness.agent.emitter import TurnEmitter, new_id
from chiron.harness.agent.history import Message, tool_message, transcript_messages, user_message
from chiron.harness.agent.model_api import ModelError, Provider, StepRequest, StepResult
from chiron.harness.agent.model_call import CallEvent, ModelCall
from chiron.harness.agent.prompt import system_prompt
from chiron.harness.agent.sdk import SdkUnavailable
from chiron.harness.agent.tool_specs import TOOL_SPECS, MalformedToolCall, parse_arguments
from chiron.harness.agent.tools import ToolRunner
from chiron.harness.server import note

if TYPE_CHECKING:
    from chiron.harness.agent.adapter import ChironAdapter

MAX_MALFORMED_IN_A_ROW = 3
_INTERRUPT = object()
_PROVIDER_READY = object()


class TurnInterrupted(Exception):
    pass


class TurnFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepView:
    """The items of one model call: a `reasoning` and an `agentMessage`, opened on first text."""

    def __init__(self, emitter: TurnEmitter) -> None:
        self.emitter = emitter
        self.text = ""
        self.reasoning = ""
        self._message_id: str | None = None
        self._reasoning_id: str | None = None

    def on_text(self, delta: str) -> None:
        if self._message_id is None:
            self._message_id = new_id("msg")
            self.emitter.started(protocol.agent_message_item(self._message_id, ""))
        self.text += delta
        self.emitter.agent_delta(self._message_id, delta)

    def on_reasoning(self, delta: str) -> None:
        if self._reasoning_id is None:
            self._reasoning_id = new_id("rs")
            self.emitter.started(protocol.reasoning_item(self._reasoning_id, ""))
        self.reasoning += delta
        self.emitter.reasoning_delta(self._reasoning_id, delta)

    def close(self, *, final: bool) -> None:
        """Complete the open items; a final answer always gets its `agentMessage`."""
        if self._reasoning_id is not None:
            self.emitter.completed(protocol.reasoning_item(self._reasoning_id, self.reasoning))
            self._reasoning_id = None
        if self._message_id is None and final:
            self._message_id = new_id("msg")
            self.emitter.started(protocol.agent_message_item(self._message_id, ""))
        if self._message_id is not None:
            self.emitter.completed(protocol.agent_message_item(self._message_id, self.text))
            self._message_id = None


def assistant_message(result: StepResult) -> Message:
    message: Message = {
        "role": "assistant",
        "text": result.text,
        "reasoning": result.reasoning,
        "tool_calls": [
            {"id": call.call_id, "name": call.name, "arguments": call.arguments}
            for call in result.tool_calls
        ],
    }
    if result.thinking_blocks:
        message["thinking_blocks"] = result.thinking_blocks
    return message


class AgentTurn:
    def __init__(
        self, adapter: ChironAdapter, text: str, line: dict[str, Any] | None, *, first: bool
    ) -> None:
        self.adapter = adapter
        self.text = text
        context = line.get("session_context") if line is not None else None
        self.context: dict[str, Any] = context if isinstance(context, dict) else {}
        self.first = first
        self.turn_id = new_id("turn")
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.interrupted = False
        self._lock = threading.Lock()
        self._steering: list[str] = []
        self._tools: ToolRunner | None = None
        self.thread = threading.Thread(target=self._run, name=f"turn-{self.turn_id}", daemon=True)

    # -- called from the stdin thread -------------------------------------------------------

    def steer(self, text: str) -> None:
        with self._lock:
            self._steering.append(text)

    def interrupt(self) -> None:
        with self._lock:
            if self.interrupted:
                return
            self.interrupted = True
            tools = self._tools
        self.inbox.put(_INTERRUPT)
        if tools is not None:
            tools.kill_running()

    def has_steering(self) -> bool:
        with self._lock:
            return bool(self._steering)

    def take_steering(self) -> list[str]:
        with self._lock:
            pending, self._steering = self._steering, []
        return pending

    # -- turn thread --------------------------------------------------------------------

    def _run(self) -> None:
        adapter = self.adapter
        history = adapter.history
        thread_id = adapter.thread_id(self.context)
        emitter = TurnEmitter(adapter.writer, thread_id, self.turn_id)
        if self.first:
            emitter.emit(protocol.thread_started(thread_id))
        emitter.emit(protocol.turn_started(thread_id, self.turn_id))
        tools = ToolRunner(adapter.workspace, emitter, agent_config.DEFAULT_COMMAND_TIMEOUT_S)
        with self._lock:
            self._tools = tools
            if self.interrupted:
                tools.kill_running()
        try:
            history.close_open_tool_calls()
            if not history.messages:
                history.messages.extend(transcript_messages(self.context.get("transcript")))
            history.append(user_message(self.text))
            history.save()
            self._loop(emitter, tools)
            return
        except TurnInterrupted:
            ending = protocol.turn_completed(thread_id, self.turn_id, "interrupted")
        except TurnFailed as exc:
            ending = protocol.turn_failed(thread_id, self.turn_id, exc.message)
        except Exception as exc:
            note("chiron agent: internal error\n" + traceback.format_exc())
            message = f"internal error in the chiron agent: {type(exc).__name__}: {exc}"
            ending = protocol.turn_failed(thread_id, self.turn_id, message)
        history.close_open_tool_calls()
        adapter.finish_turn(self, ending)

    def _check_interrupted(self) -> None:
        if self.interrupted:
            raise TurnInterrupted

    def _absorb_steering(self) -> None:
        pending = self.take_steering()
        for text in pending:
            self.adapter.history.append(user_message(text))
        if pending:
            self.adapter.history.save()

    def _setup(self) -> tuple[agent_config.AgentConfig, Provider]:
        """The turn's settings and provider; an interrupt need not wait for an SDK import."""
        try:
            settings = agent_config.resolve(os.environ, self.context)
        except agent_config.ConfigError as exc:
            raise TurnFailed(str(exc)) from None
        made: list[Provider | Exception] = []

        def make() -> None:
            try:
                made.append(self.adapter.provider(settings))
            except Exception as exc:
                made.append(exc)
            self.inbox.put(_PROVIDER_READY)

        threading.Thread(target=make, name="make-provider", daemon=True).start()
        while (event := self.inbox.get()) is not _PROVIDER_READY:
            if event is _INTERRUPT:
                raise TurnInterrupted
        [provider] = made
        if isinstance(provider, SdkUnavailable):
            raise TurnFailed(str(provider))
        if isinstance(provider, Exception):
            # The SDK refused its settings (a base URL it cannot use, …).
            raise TurnFailed(
                f"cannot set up the {settings.provider} client: {type(provider).__name__}: "
                f"{provider}"
            )
        return settings, provider

    def _loop(self, emitter: TurnEmitter, tools: ToolRunner) -> None:
        settings, provider = self._setup()
        tools.command_timeout_s = settings.command_timeout_s
        history = self.adapter.history
        steps = 0
        malformed = 0
        problem = ""
        while True:
            self._check_interrupted()
            if steps >= settings.max_steps:
                raise TurnFailed(
                    f"stopped after {steps} model steps without a final answer "
                    "(CHIRON_AGENT_MAX_STEPS)"
                )
            result = self._step(emitter, settings, provider)
            steps += 1
            history.append(assistant_message(result))
            history.save()
            if not result.tool_calls:
                ending = protocol.turn_completed(emitter.thread_id, self.turn_id, "completed")
                if self.adapter.finish_turn(self, ending, unless_steered=True):
                    return
                continue  # steering arrived with the answer: the model hears it first
            for call in result.tool_calls:
                if self.interrupted:
                    break  # the calls left get an "interrupted" result
                try:
                    arguments = parse_arguments(call.name, call.arguments)
                except MalformedToolCall as exc:
                    malformed += 1
                    problem = str(exc)
                    tools.report_malformed(call.name, call.arguments, problem)
                    history.append(
                        tool_message(call.call_id, call.name, f"error: {problem}", is_error=True)
                    )
                    continue
                malformed = 0
                outcome = tools.run(call.name, arguments)
                history.append(
                    tool_message(call.call_id, call.name, outcome.output, is_error=outcome.is_error)
                )
                history.save()
            history.close_open_tool_calls()
            history.save()
            self._check_interrupted()
            if malformed >= MAX_MALFORMED_IN_A_ROW:
                raise TurnFailed(f"the model kept sending malformed tool calls: {problem}")

    def _step(
        self, emitter: TurnEmitter, settings: agent_config.AgentConfig, provider: Provider
    ) -> StepResult:
        """One model call, retried after transient failures."""
        attempt = 0
        while True:
            self._absorb_steering()
            request = StepRequest(
                model=settings.model,
                system=system_prompt(self.adapter.workspace, self.context.get("system_prompt")),
                messages=list(self.adapter.history.messages),
                tools=TOOL_SPECS,
                reasoning_effort=settings.reasoning_effort,
            )
            view = StepView(emitter)
            try:
                result = self._call(provider, request, view, settings.timeout_s)
            except ModelError as exc:
                view.close(final=False)
                if not exc.retryable:
                    raise TurnFailed(exc.message) from None
                if attempt >= settings.max_retries:
                    raise TurnFailed(
                        f"{exc.message} (gave up after {attempt + 1} attempts; "
                        "CHIRON_MODEL_MAX_RETRIES)"
                    ) from None
                delay = settings.retry_base_s * 2**attempt
                if exc.retry_after is not None:
                    delay = exc.retry_after
                delay = min(delay, settings.retry_max_s)
                attempt += 1
                emitter.retrying(
                    f"{exc.message}; retrying in {delay:.1f} s "
                    f"(retry {attempt} of {settings.max_retries})"
                )
                self._sleep(delay)
                continue
            except TurnInterrupted:
                view.close(final=False)
                if view.text:
                    # What the user saw stays in the conversation.
                    self.adapter.history.append(
                        {
                            "role": "assistant",
                            "text": view.text,
                            "reasoning": view.reasoning,
                            "tool_calls": [],
                        }
                    )
                raise
            view.close(final=not result.tool_calls)
            return result

    def _call(
        self, provider: Provider, request: StepRequest, view: StepView, timeout_s: float
    ) -> StepResult:
        self._check_interrupted()
        call = ModelCall(provider, request, self.inbox)
        call.start()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                event = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                call.abort()
                raise ModelError(
                    f"the model API sent nothing for {timeout_s:g} s (CHIRON_MODEL_TIMEOUT_S)",
                    retryable=True,
                ) from None
            if event is _INTERRUPT:
                call.abort()
                raise TurnInterrupted
            if not isinstance(event, CallEvent) or event.call is not call:
                continue  # a late event of a call given up on
            deadline = time.monotonic() + timeout_s
            if event.kind == "text":
                view.on_text(event.payload)
            elif event.kind == "reasoning":
                view.on_reasoning(event.payload)
            elif event.kind == "done":
                result: StepResult = event.payload
                return result
            elif event.kind in ("error", "crash"):
                raise event.payload

    def _sleep(self, seconds: float) -> None:
        """Back-off that an interrupt cuts short."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_interrupted()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                event = self.inbox.get(timeout=remaining)
            except queue.Empty:
                return
            if event is _INTERRUPT:
                raise TurnInterrupted
