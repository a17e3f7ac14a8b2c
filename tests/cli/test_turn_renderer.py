"""What a person sees of one turn: live output once, the answer when it adds something."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from chiron.cli.console import Consoles
from chiron.cli.event_stream import OUTPUT_LINE, StreamEvent
from chiron.cli.turn_renderer import TurnRenderer


def consoles() -> tuple[Consoles, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Consoles(Console(file=out, width=100), Console(file=err, width=100)), out, err


class Events:
    def __init__(self) -> None:
        self.next_id = 0

    def make(self, event_type: str, payload: Any) -> StreamEvent:
        self.next_id += 1
        return StreamEvent(self.next_id, event_type, payload, "exe_1")

    def line(self, method: str, **params: Any) -> StreamEvent:
        return self.make(OUTPUT_LINE, json.dumps({"method": method, "params": params}))

    def shell_turn(
        self, command: str, deltas: list[str], answer: str, exit_code: int = 0
    ) -> list[StreamEvent]:
        item = {"id": "item_1", "type": "commandExecution", "command": command}
        return [
            self.make("session.execution_queued", {"input_line_count": 1}),
            self.make("session.sandbox_ready", {"source": "cold_create"}),
            self.line("turn/started", turn={"id": "t1"}),
            self.line("item/started", item=item),
            *[self.line("item/commandExecution/outputDelta", delta=d) for d in deltas],
            self.line("item/completed", item={**item, "exitCode": exit_code}),
            self.line("item/completed", item={"id": "m1", "type": "agentMessage", "text": answer}),
            self.line("turn/completed", turn={"id": "t1", "status": "completed"}),
            self.make("session.execution_completed", {"result_text": answer}),
        ]


def render(events: list[StreamEvent]) -> tuple[Any, str, str]:
    both, out, err = consoles()
    renderer = TurnRenderer(both, "exe_1")
    renderer.start()
    for event in events:
        renderer.on_event(event)
    return renderer.finish(), out.getvalue(), err.getvalue()


def test_shell_output_streams_once_and_its_repeated_tail_is_not_printed_again() -> None:
    events = Events().shell_turn("printf", ["one\n", "two\n", "three"], "one\ntwo\nthree")
    result, out, err = render(events)
    assert out == "$ printf\none\ntwo\nthree\n"
    assert result.ok and result.result_text == "one\ntwo\nthree"
    assert "✓ completed" in err


def test_failed_command_reports_its_exit_status() -> None:
    events = Events().shell_turn("false", ["nope\n"], "nope\n(exit status 1)", exit_code=1)
    result, out, err = render(events)
    assert out == "$ false\nnope\n"
    assert result.ok and result.exit_code == 1
    assert "exit status 1" in err


def test_an_answer_that_adds_something_is_rendered() -> None:
    events = Events().shell_turn("ls", ["a.txt\n"], "There is **one** file: a.txt.")
    _, out, _ = render(events)
    assert out.startswith("$ ls\na.txt\n")
    assert "There is one file: a.txt." in out


def test_failure_and_cancellation_show_error_and_reason() -> None:
    maker = Events()
    failed = [
        maker.make(
            "session.execution_failed", {"error": "sandbox vanished", "reason": "sandbox_lost"}
        )
    ]
    result, _, err = render(failed)
    assert result.status == "failed" and not result.ok
    assert "✗ failed: sandbox vanished (sandbox_lost)" in err
    cancelled = [maker.make("session.execution_cancelled", {"reason": "interrupted"})]
    result, _, err = render(cancelled)
    assert result.status == "cancelled" and "■ cancelled (interrupted)" in err


def test_untrusted_escape_sequences_never_reach_the_terminal() -> None:
    maker = Events()
    hostile = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m text\n"
    _, out, _ = render([maker.line("item/commandExecution/outputDelta", delta=hostile)])
    assert "\x1b" not in out and "\x07" not in out
    assert "red text" in out


def test_non_json_output_is_shown_as_is_and_a_missing_end_means_detached() -> None:
    maker = Events()
    result, out, err = render([maker.make(OUTPUT_LINE, "plain words from the harness")])
    assert out == "plain words from the harness\n"
    assert result.status == "detached" and "goes on on the server" in err
