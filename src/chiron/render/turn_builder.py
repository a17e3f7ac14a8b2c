"""The shape every dialect's turn is rendered into; dialect readers only translate wire fields.

Readers call these methods in the order the harness reported things; the builder turns them
into UI events and keeps the promises all consumers rely on, whatever the dialect:

- text: every agent message yields one or more `text_delta` whose texts, joined, are the
  message, then one `message`. A harness that streams sends its deltas as they come; a
  message that arrives whole (the `shell` harness, Claude without partial messages, `codex
  exec`) becomes one `text_delta` with the whole text, sent with its `message`. When streamed
  text is a prefix of the final text, only the missing rest is sent as a last delta.
- reasoning: the same rule, with `reasoning` events (no closing event: it is only shown).
- commands: `command_started`, then its `command_output` chunks, then one
  `command_finished`. A command reported only when it ended is started first; one that never
  streamed output gets its aggregated output as a single chunk before it finishes.
- tool calls: a `tool_call` in progress, then one with its final status.
- the end: `answer` (completed turns with a result text) and then `done`, exactly once, last;
  items still open then are closed as `interrupted` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chiron.render.ui_events import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    INTERRUPTED,
    Answer,
    CommandFinished,
    CommandOutput,
    CommandStarted,
    Done,
    Error,
    FileChange,
    FileChangeEntry,
    Message,
    OutputLine,
    Plan,
    PlanStep,
    Reasoning,
    Status,
    TextDelta,
    ToolCall,
    UiEvent,
)


@dataclass
class _Stream:
    """Text sent for one item so far, and how much of it later whole texts accounted for."""

    sent: str = ""
    confirmed: int = 0


@dataclass
class _Command:
    command: str
    output_seen: bool = False


@dataclass(frozen=True)
class HarnessOutcome:
    """How the harness itself said the turn ended, before the server's terminal event."""

    status: str  # completed | failed | cancelled
    result_text: str | None = None
    error: str | None = None
    reason: str | None = None


class TurnBuilder:
    """One turn's UI events so far (`drain` takes them) and what the shape rules need."""

    def __init__(self) -> None:
        self.events: list[UiEvent] = []
        self.last_message: str | None = None
        self.outcome: HarnessOutcome | None = None
        self.done = False
        self._texts: dict[str, _Stream] = {}
        self._reasoning: dict[str, _Stream] = {}
        self._commands: dict[str, _Command] = {}
        self._tools: dict[str, ToolCall] = {}
        self._fatal_error: str | None = None

    def drain(self) -> list[UiEvent]:
        events, self.events = self.events, []
        return events

    # -- text and reasoning ----------------------------------------------------------------

    def text_delta(self, item_id: str, text: str) -> None:
        if text:
            self._texts.setdefault(item_id, _Stream()).sent += text
            self.events.append(TextDelta(item_id, text))

    def message(self, item_id: str, text: str) -> None:
        rest = _unsent_rest(self._texts.setdefault(item_id, _Stream()), text)
        if rest:
            self.text_delta(item_id, rest)
        self.last_message = text
        self.events.append(Message(item_id, text))

    def reasoning_delta(self, item_id: str, text: str) -> None:
        if text:
            self._reasoning.setdefault(item_id, _Stream()).sent += text
            self.events.append(Reasoning(item_id, text))

    def reasoning(self, item_id: str, text: str) -> None:
        rest = _unsent_rest(self._reasoning.setdefault(item_id, _Stream()), text)
        if rest:
            self.reasoning_delta(item_id, rest)

    # -- commands and other work -----------------------------------------------------------

    def command_started(self, item_id: str, command: str) -> None:
        if item_id not in self._commands:
            self._commands[item_id] = _Command(command)
            self.events.append(CommandStarted(item_id, command))

    def command_output(self, item_id: str, text: str) -> None:
        if not text:
            return
        if not item_id and self._commands:
            # Output that names no command belongs to the one running (the latest, if several).
            item_id = next(reversed(self._commands))
        self.command_started(item_id, "")
        self._commands[item_id].output_seen = True
        self.events.append(CommandOutput(item_id, text))

    def command_finished(
        self,
        item_id: str,
        command: str,
        status: str,
        *,
        exit_code: int | None = None,
        output: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        self.command_started(item_id, command)
        if output and not self._commands[item_id].output_seen:
            self.command_output(item_id, output)
        started = self._commands.pop(item_id)
        self.events.append(
            CommandFinished(item_id, command or started.command, status, exit_code, duration_ms)
        )

    def tool_call(
        self,
        item_id: str,
        server: str | None,
        tool: str,
        arguments: Any,
        status: str,
        *,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        call = ToolCall(item_id, server, tool, arguments, status, result, error)
        if status == IN_PROGRESS:
            if item_id not in self._tools:
                self._tools[item_id] = call
                self.events.append(call)
            return
        if self._tools.pop(item_id, None) is None:
            self.events.append(ToolCall(item_id, server, tool, arguments, IN_PROGRESS))
        self.events.append(call)

    def file_change(self, item_id: str, changes: list[FileChangeEntry], status: str) -> None:
        self.events.append(FileChange(item_id, tuple(changes), status))

    def plan(self, steps: list[PlanStep], explanation: str | None = None) -> None:
        self.events.append(Plan(tuple(steps), explanation))

    def output_line(self, text: str) -> None:
        self.events.append(OutputLine(text))

    def status(self, phase: str, text: str) -> None:
        self.events.append(Status(phase, text))

    # -- errors and the end ----------------------------------------------------------------

    def error(self, message: str, *, will_retry: bool) -> None:
        if not will_retry:
            self._fatal_error = message
        self.events.append(Error(message, will_retry))

    def harness_ended(
        self, status: str, *, error: str | None = None, result_text: str | None = None
    ) -> None:
        """The harness's own terminal line (DESIGN.md §7 rules); `done` waits for the server.

        `status` is the harness's word: `completed`, `interrupted` or `failed`.
        """
        if self.outcome is not None:
            return
        answer = result_text if result_text is not None else self.last_message
        if status == "completed":
            self.outcome = HarnessOutcome(COMPLETED, answer, reason="completed")
        elif status == "interrupted":
            self.outcome = (
                HarnessOutcome("cancelled", reason="interrupted")
                if answer is None
                else HarnessOutcome(COMPLETED, answer, reason="interrupted")
            )
        else:
            message = error or self._fatal_error or f"turn ended with {status}"
            if message != self._fatal_error:
                self.error(message, will_retry=False)
            self.outcome = HarnessOutcome(FAILED, error=message, reason="harness_error")

    def execution_ended(
        self,
        status: str,
        *,
        result_text: str | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        """The server's terminal event: its word on status wins over the harness's."""
        if self.done:
            return
        harness = self.outcome
        if status == COMPLETED and result_text is None:
            result_text = harness.result_text if harness is not None else self.last_message
        if status == FAILED and error is None and harness is not None:
            error = harness.error
        if status != COMPLETED:
            result_text = None
        self._close_open_items()
        if result_text:
            self.events.append(Answer(result_text))
        self.events.append(Done(status, result_text, error, reason))
        self.done = True

    def finish(self) -> None:
        """End a stream that had no server terminal event with the harness's own outcome."""
        if not self.done and self.outcome is not None:
            outcome = self.outcome
            self.execution_ended(
                outcome.status,
                result_text=outcome.result_text,
                error=outcome.error,
                reason=outcome.reason,
            )

    def _close_open_items(self) -> None:
        for item_id, command in list(self._commands.items()):
            self.command_finished(item_id, command.command, INTERRUPTED)
        for call in list(self._tools.values()):
            self.tool_call(call.item_id, call.server, call.tool, call.arguments, INTERRUPTED)


def _unsent_rest(stream: _Stream, whole: str) -> str:
    """What of `whole` was not streamed yet (the caller sends it)."""
    pending = stream.sent[stream.confirmed :]
    if whole.startswith(pending):
        rest = whole[len(pending) :]
        # The caller sends `rest` next, so all of `sent` is then accounted for.
        stream.confirmed = len(stream.sent) + len(rest)
        return rest
    # The streamed text and the final one disagree: what was shown cannot be taken back, so
    # nothing more is sent; the `message` event still carries the final text.
    stream.confirmed = len(stream.sent)
    return ""
