"""Shows one execution's events as they arrive: a spinner, live output, then the result.

It reads the Codex app-server dialect every harness emits (DESIGN.md §7): command output
deltas and agent-message deltas are printed the moment they arrive; the final agent message
is rendered as Markdown at the end unless it only repeats output already on screen (the
`shell` harness answers with the tail of its command's output).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from rich.markdown import Markdown
from rich.status import Status
from rich.text import Text

from chiron.cli.console import Consoles
from chiron.cli.event_stream import OUTPUT_LINE, StreamEvent

# The shell harness appends this line to its answer when the command failed.
_EXIT_STATUS_SUFFIX = re.compile(r"\n?\(exit status -?\d+\)\s*$")
# Enough to recognise a repeated output tail (the shell harness keeps 64 KiB).
_SHOWN_TAIL_CHARS = 256 * 1024

_STATUS_OF_EVENT = {
    "session.execution_queued": "queued",
    "session.execution_started": "starting the sandbox",
    "session.input_flushed": "waiting for output",
    "session.execution_adopted": "resumed after a server restart",
    "session.interrupt_delivered": "interrupt delivered, waiting for the turn to stop",
}


@dataclass(frozen=True)
class TurnResult:
    status: str  # completed | failed | cancelled | detached
    execution_id: str
    result_text: str | None = None
    error: str | None = None
    reason: str | None = None
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class TurnRenderer:
    """Feed it the events of one execution in order; call `finish` once the stream ended."""

    def __init__(self, consoles: Consoles, execution_id: str) -> None:
        self._out = consoles.out
        self._err = consoles.err
        self.execution_id = execution_id
        self._status: Status | None = None
        self._started = time.monotonic()
        self._shown = _Tail(_SHOWN_TAIL_CHARS)
        self._at_line_start = True
        self._answer: str | None = None
        self._streamed_answer = ""
        self._exit_code: int | None = None
        self._outcome: StreamEvent | None = None

    # -- spinner -------------------------------------------------------------------------

    def start(self) -> None:
        self._status = self._err.status("queued", spinner="dots")
        self._status.start()

    def _set_status(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop_spinner()

    def note(self, message: str) -> None:
        """A side remark (reconnecting, interrupting) that must not garble the output."""
        if self._status is not None:
            self._status.update(message)
            return
        self._end_line()
        self._err.print(Text(message, style="dim"), soft_wrap=True)

    def note_reconnect(self, attempt: int, delay: float, problem: str) -> None:
        self.note(f"event stream dropped ({problem}); resuming in {delay:.1f}s (#{attempt})")

    # -- events --------------------------------------------------------------------------

    def on_event(self, event: StreamEvent) -> None:
        if event.event_type == OUTPUT_LINE:
            self._on_output_line(event.payload)
        elif event.is_terminal:
            self._outcome = event
        elif event.event_type == "session.sandbox_ready":
            source = _field(event.payload, "source") or "ready"
            self._set_status(f"sandbox ready ({source}), running")
        elif event.event_type == "session.output.truncated":
            size = _field(event.payload, "original_bytes")
            self._write(Text(f"[an output line of {size} bytes was truncated]\n", style="dim"))
        elif event.event_type in _STATUS_OF_EVENT:
            self._set_status(_STATUS_OF_EVENT[event.event_type])

    def _on_output_line(self, payload: Any) -> None:
        line = payload if isinstance(payload, str) else json.dumps(payload)
        try:
            message = json.loads(line)
        except ValueError:
            # Non-JSON stdout is stored like any other output (DESIGN.md §7); show it as is.
            self._write_output(line + "\n")
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        params = message.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            return
        if method == "item/commandExecution/outputDelta":
            delta = params.get("delta")
            if isinstance(delta, str):
                self._write_output(delta)
        elif method == "item/agentMessage/delta":
            delta = params.get("delta")
            if isinstance(delta, str):
                self._streamed_answer += delta
                self._write_output(delta)
        elif method == "item/started":
            item = params.get("item")
            if isinstance(item, dict) and item.get("type") == "commandExecution":
                self._end_line()
                self._write(Text(f"$ {item.get('command', '')}\n", style="bold dim"))
        elif method == "item/completed":
            self._on_item_completed(params.get("item"))
        elif method == "error" and not params.get("willRetry"):
            error = params.get("error")
            text = _field(error, "message") if isinstance(error, dict) else str(error)
            self._end_line()
            self._write(Text(f"harness error: {text}\n", style="red"))

    def _on_item_completed(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if item.get("type") == "commandExecution":
            exit_code = item.get("exitCode")
            if isinstance(exit_code, int):
                self._exit_code = exit_code
            self._end_line()
        elif item.get("type") == "agentMessage" and isinstance(item.get("text"), str):
            self._answer = item["text"]

    # -- printing ------------------------------------------------------------------------

    def _write_output(self, text: str) -> None:
        # Sandbox output is untrusted: from_ansi keeps colours but drops every other escape
        # sequence, so a command cannot move the cursor or retitle the user's terminal.
        body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
        rendered = Text.from_ansi(body, end="")
        rendered.append(newline)
        self._shown.add(text)
        self._write(rendered)

    def _write(self, text: Text) -> None:
        self._stop_spinner()
        if len(text):
            self._out.print(text, end="", soft_wrap=True)
            self._at_line_start = text.plain.endswith("\n")

    def _end_line(self) -> None:
        if not self._at_line_start:
            self._out.print()
            self._at_line_start = True

    # -- result --------------------------------------------------------------------------

    def finish(self) -> TurnResult:
        """Print the answer and a one-line summary; the stream must have ended."""
        self._stop_spinner()
        self._end_line()
        elapsed = time.monotonic() - self._started
        outcome = self._outcome
        if outcome is None:
            self._err.print(
                Text(
                    f"stopped following execution {self.execution_id}; it goes on on the server",
                    style="yellow",
                ),
                soft_wrap=True,
            )
            return TurnResult(status="detached", execution_id=self.execution_id)
        status = outcome.event_type.rsplit("_", 1)[-1]
        result_text = _field(outcome.payload, "result_text") or self._answer
        error = _field(outcome.payload, "error")
        reason = _field(outcome.payload, "reason")
        if status == "completed" and result_text and not self._already_shown(result_text):
            self._out.print(Markdown(result_text))
        summary = Text()
        if status == "completed":
            summary.append("✓ completed", style="bold green")
            if self._exit_code:
                summary.append(f" · exit status {self._exit_code}", style="yellow")
        elif status == "cancelled":
            summary.append("■ cancelled", style="bold yellow")
            if reason:
                summary.append(f" ({reason})")
        else:
            summary.append("✗ failed", style="bold red")
            if error:
                summary.append(f": {error}")
            if reason:
                summary.append(f" ({reason})")
        summary.append(f" · {elapsed:.1f}s", style="dim")
        self._err.print(summary, soft_wrap=True)
        return TurnResult(
            status=status,
            execution_id=self.execution_id,
            result_text=result_text,
            error=error,
            reason=reason,
            exit_code=self._exit_code,
        )

    def _already_shown(self, answer: str) -> bool:
        body = _EXIT_STATUS_SUFFIX.sub("", answer).strip()
        if self._streamed_answer and answer.strip() == self._streamed_answer.strip():
            return True
        return not body or self._shown.text().rstrip().endswith(body)


class _Tail:
    """The last `limit` characters written, without re-copying the whole tail per write."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * self._limit:
            joined = "".join(self._parts)[-self._limit :]
            self._parts, self._size = [joined], len(joined)

    def text(self) -> str:
        return "".join(self._parts)[-self._limit :]


def _field(payload: Any, name: str) -> Any:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if value not in ("", None) else None
