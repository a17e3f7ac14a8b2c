"""Shows one execution as it happens: a live task list, the agent's output, then its answer.

Events are normalized by `chiron.render` first, so every harness dialect looks the same here.
Where things go: stdout gets the agent's work a person may want to keep (`chiron chat … >
out.txt`): command headers and output, messages, the answer; stderr gets the chrome: the task
list, plan, errors, notes and the summary line.

On a terminal (stderr), a live region at the bottom (`live_region`) shows the tasks with a
spinner or a status mark, the plan, a preview of unfinished text and the phase, while whole
lines of output scroll above it; messages are held until the turn moves on, so the final one
is shown once, as the answer. Elsewhere everything is printed as it comes, and a task that
ends in a notable way (any tool call or file change, a failed command) gets one plain line.
Either way, output arriving within 50 ms is printed in one go, so a flood of lines costs one
print per batch, not one per line.

The answer is Markdown on a terminal (stdout) and plain text otherwise, and is left out when
it only repeats what is already on screen (the `shell` harness answers with the tail of its
command's output).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.text import Text

from chiron.cli.console import Consoles
from chiron.cli.event_stream import StreamEvent
from chiron.cli.live_region import LiveRegion
from chiron.cli.task_list import TaskList, plan_summary
from chiron.render import (
    Answer,
    CommandFinished,
    CommandOutput,
    CommandStarted,
    Done,
    Error,
    FileChange,
    Message,
    OutputLine,
    Plan,
    Reasoning,
    Status,
    TextDelta,
    ToolCall,
    TurnNormalizer,
    UiEvent,
)

# The shell harness appends this line to its answer when the command failed.
_EXIT_STATUS_SUFFIX = re.compile(r"\n?\(exit status -?\d+\)\s*$")
# Enough to recognise a repeated output tail (the shell harness keeps 64 KiB).
_SHOWN_TAIL_CHARS = 256 * 1024
_PREVIEW_LINES = 3
# Output is printed in batches at most this far apart: a print costs far more than a line (on
# a terminal it also redraws the live region), so a flood cannot afford one print per line.
_FLUSH_SECONDS = 0.05
# What shows that a turn went on after a message, so that message was not the answer (plan,
# reasoning and status updates may trail the answer).
_MORE_WORK = (CommandStarted, CommandOutput, OutputLine, ToolCall, FileChange, TextDelta, Message)
# Lifecycle steps worth a line of their own, beyond updating the phase.
_NOTABLE_PHASES = frozenset({"output_truncated", "egress_denied"})


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
        self._started = time.monotonic()
        self._normalizer = TurnNormalizer()
        self._tasks = TaskList()
        self._live = LiveRegion(consoles.err, self._started) if consoles.err.is_terminal else None
        self._shown = _Tail(_SHOWN_TAIL_CHARS)
        self._at_line_start = True
        self._partial = ""  # live: output after the last newline, shown in the preview
        self._ready: list[str] = []  # output waiting for the next flush (whole lines, live)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._texts: dict[str, str] = {}  # streamed text of messages not complete yet
        self._messages_shown: list[str] = []
        self._held_message: str | None = None
        self._reasoning = ""
        self._answer: str | None = None
        self._done: Done | None = None
        self._exit_code: int | None = None
        self._working = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._live is not None:
            self._live.start()

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._live is not None:
            self._live.stop()

    def note(self, message: str) -> None:
        """A side remark (reconnecting, interrupting) that must not garble the output."""
        if self._live is not None:
            self._live.update(note=message)
            return
        self._end_line()
        self._err.print(Text(message, style="dim"), soft_wrap=True)

    def note_reconnect(self, attempt: int, delay: float, problem: str) -> None:
        self.note(f"event stream dropped ({problem}); resuming in {delay:.1f}s (#{attempt})")

    # -- events --------------------------------------------------------------------------

    def on_event(self, event: StreamEvent) -> None:
        batch = self._normalizer.feed(
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "payload": event.payload,
                "execution_id": event.execution_id,
            }
        )
        for ui in _whole_messages(batch):
            self._show(ui)
        if self._live is not None and batch:
            self._live.update(
                rows=self._tasks.snapshot(), plan=self._tasks.plan, preview=self._preview()
            )

    def _show(self, ui: UiEvent) -> None:
        if self._live is not None and not self._working and not isinstance(ui, Status):
            # The harness is talking: "waiting for output" is over.
            self._working = True
            self._live.update(phase="working")
        if self._held_message is not None and isinstance(ui, _MORE_WORK):
            # More work follows the held message: it was not the answer, show it now.
            self._print_message(self._held_message)
            self._held_message = None
        if isinstance(ui, CommandStarted | CommandFinished | ToolCall | FileChange | Plan):
            self._on_task(ui)
        elif isinstance(ui, CommandOutput):
            self._write_output(ui.text)
        elif isinstance(ui, OutputLine):
            self._write_output(ui.text + "\n")
        elif isinstance(ui, TextDelta):
            self._texts[ui.item_id] = self._texts.get(ui.item_id, "") + ui.text
            if self._live is None:
                self._write_output(ui.text)
        elif isinstance(ui, Message):
            self._on_message(ui)
        elif isinstance(ui, Reasoning):
            self._reasoning += ui.text
        elif isinstance(ui, Error):
            if ui.will_retry:
                self._chrome(Text(f"harness warning: {ui.message}", style="yellow"))
            else:
                self._chrome(Text(f"harness error: {ui.message}", style="red"))
        elif isinstance(ui, Status):
            if self._live is not None:
                self._live.update(phase=ui.text)
            if ui.phase in _NOTABLE_PHASES:
                self._chrome(Text(f"[{ui.text}]", style="dim"))
        elif isinstance(ui, Answer):
            self._answer = ui.text
        elif isinstance(ui, Done):
            self._done = ui

    def _on_task(self, ui: CommandStarted | CommandFinished | ToolCall | FileChange | Plan) -> None:
        finished = self._tasks.update(ui)
        self._reasoning = ""
        if isinstance(ui, CommandStarted):
            self._end_output()
            # A command known only from its output has no command line to head it.
            if ui.command:
                self._print_out(Text(f"$ {ui.command}", style="bold dim"))
        elif isinstance(ui, CommandFinished):
            self._end_output()
            if ui.exit_code is not None:
                self._exit_code = ui.exit_code
        elif isinstance(ui, Plan) and self._live is None:
            self._chrome(plan_summary(ui.steps))
        # On a terminal the live task list shows every task; elsewhere only the notable ends.
        notable = finished is not None and (
            not isinstance(ui, CommandFinished) or finished.status != "completed"
        )
        if self._live is None and finished is not None and notable:
            self._chrome(finished.render())

    def _on_message(self, ui: Message) -> None:
        streamed = self._texts.pop(ui.item_id, None)
        if self._live is not None:
            self._held_message = ui.text
        elif streamed is not None:
            # Streamed to the screen as it came: only the line needs ending.
            self._end_output()
            self._messages_shown.append(ui.text)
        else:
            self._print_message(ui.text)

    def _preview(self) -> tuple[str, ...]:
        text = next(reversed(self._texts.values()), "") or self._partial or self._reasoning
        lines = [line for line in text.splitlines() if line.strip()]
        return tuple(lines[-_PREVIEW_LINES:])

    # -- printing ------------------------------------------------------------------------

    def _write_output(self, text: str) -> None:
        """Untrusted output, verbatim, printed with whatever else arrived within a moment."""
        self._shown.add(text)
        if self._live is None:
            self._ready.append(text)
        else:
            # A Live region is redrawn below each print: a print must end its line.
            self._partial += text
            complete, newline, self._partial = self._partial.rpartition("\n")
            if not newline:
                return
            self._ready.append(complete + newline)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_ready()
            return
        # The timer runs on this loop's thread, like every other call into the renderer.
        self._flush_timer = loop.call_later(_FLUSH_SECONDS, self._flush_ready)

    def _flush_ready(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._ready:
            return
        text, self._ready = "".join(self._ready), []
        body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
        if self._live is None:
            self._out.print(_sanitized(body).append(newline), end="", soft_wrap=True)
            self._at_line_start = bool(newline)
        else:
            self._out_console().print(_sanitized(body), soft_wrap=True)

    def _end_output(self) -> None:
        """Everything written so far is on screen, and the cursor is at a line start."""
        if self._partial:
            self._ready.append(self._partial + "\n")
            self._partial = ""
        self._end_line()

    def _print_message(self, text: str) -> None:
        if self._already_shown(text):
            return
        self._messages_shown.append(text)
        self._print_out(self._as_answer(text))

    def _as_answer(self, text: str) -> RenderableType:
        return Markdown(text) if self._out.is_terminal else Text(text.rstrip("\n"))

    def _print_out(self, renderable: RenderableType) -> None:
        """A whole line (or block) of the agent's work, after the output waiting before it."""
        self._end_line()
        self._out_console().print(renderable, soft_wrap=True)

    def _out_console(self) -> Console:
        # stdout on the terminal showing the live region must go through the region's console,
        # or the region is drawn over it.
        return self._err if self._live is not None and self._out.is_terminal else self._out

    def _chrome(self, text: Text) -> None:
        self._end_line()
        self._err.print(text, soft_wrap=True)

    def _end_line(self) -> None:
        self._flush_ready()
        if not self._at_line_start:
            self._out.print()
            self._at_line_start = True

    # -- result --------------------------------------------------------------------------

    def finish(self) -> TurnResult:
        """Print the answer and a one-line summary; the stream must have ended."""
        self._end_output()
        done, answer = self._done, self._answer
        held, self._held_message = self._held_message, None
        if held is not None and (done is None or done.status != "completed" or held != answer):
            self._print_message(held)
        if self._live is not None:
            # Text cut off by the end of the turn was only in the preview: keep what was said.
            for unfinished in self._texts.values():
                self._print_message(unfinished)
        if self._live is not None:
            self._live.update(rows=self._tasks.snapshot(), plan=self._tasks.plan)
            self._live.stop()
        elapsed = time.monotonic() - self._started
        if done is None:
            self._err.print(
                Text(
                    f"stopped following execution {self.execution_id}; it goes on on the server",
                    style="yellow",
                ),
                soft_wrap=True,
            )
            return TurnResult(status="detached", execution_id=self.execution_id)
        if done.status == "completed" and answer and not self._already_shown(answer):
            self._out.print(self._as_answer(answer), soft_wrap=True)
        self._err.print(self._summary(done, elapsed), soft_wrap=True)
        return TurnResult(
            status=done.status,
            execution_id=self.execution_id,
            result_text=done.result_text,
            error=done.error,
            reason=done.reason if done.status != "completed" else None,
            exit_code=self._exit_code,
        )

    def _summary(self, done: Done, elapsed: float) -> Text:
        summary = Text()
        if done.status == "completed":
            summary.append("✓ completed", style="bold green")
            if self._exit_code:
                summary.append(f" · exit status {self._exit_code}", style="yellow")
        elif done.status == "cancelled":
            summary.append("■ cancelled", style="bold yellow")
            if done.reason:
                summary.append(f" ({done.reason})")
        else:
            summary.append("✗ failed", style="bold red")
            if done.error:
                summary.append(f": {done.error}")
            if done.reason:
                summary.append(f" ({done.reason})")
        summary.append(f" · {elapsed:.1f}s", style="dim")
        return summary

    def _already_shown(self, answer: str) -> bool:
        if any(answer.strip() == shown.strip() for shown in self._messages_shown):
            return True
        body = _EXIT_STATUS_SUFFIX.sub("", answer).strip()
        return not body or self._shown.text().rstrip().endswith(body)


def _whole_messages(batch: list[UiEvent]) -> Iterator[UiEvent]:
    """The batch without the single delta of each message that arrived whole.

    The normalizer sends a message the harness did not stream as one `text_delta` right before
    its `message`; shown as a whole message instead, it can be left out when it only repeats
    output already on screen.
    """
    for index, ui in enumerate(batch):
        following = batch[index + 1] if index + 1 < len(batch) else None
        if (
            isinstance(ui, TextDelta)
            and isinstance(following, Message)
            and following.item_id == ui.item_id
            and following.text == ui.text
        ):
            continue
        yield ui


def _sanitized(text: str) -> Text:
    # Sandbox output is untrusted: from_ansi keeps colours but drops every other escape
    # sequence, so a command cannot move the cursor or retitle the user's terminal.
    return Text.from_ansi(text, end="")


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
