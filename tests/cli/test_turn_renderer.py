"""What a person sees of one turn: live output once, a task list, the answer when it adds
something — as Markdown and a live region on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import pytest
from rich.console import Console

from chiron.cli.console import Consoles
from chiron.cli.event_stream import OUTPUT_LINE, StreamEvent
from chiron.cli.turn_renderer import TurnRenderer, TurnResult
from tests.render.stream_fixtures import STREAMS, read_lines, stored_events

# Cursor movement and other control sequences a Live region writes around its frames.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def consoles(terminal: bool = False) -> tuple[Consoles, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()

    def console(file: io.StringIO) -> Console:
        if not terminal:
            return Console(file=file, width=100)
        # No colours, so assertions read the text; still a terminal, so Live and Markdown run.
        return Console(file=file, width=100, force_terminal=True, color_system=None)

    return Consoles(console(out), console(err)), out, err


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
            *[
                self.line("item/commandExecution/outputDelta", itemId="item_1", delta=d)
                for d in deltas
            ],
            self.line("item/completed", item={**item, "exitCode": exit_code}),
            self.line("item/completed", item={"id": "m1", "type": "agentMessage", "text": answer}),
            self.line("turn/completed", turn={"id": "t1", "status": "completed"}),
            self.make("session.execution_completed", {"result_text": answer}),
        ]


def render(events: list[StreamEvent], terminal: bool = False) -> tuple[TurnResult, str, str]:
    both, out, err = consoles(terminal)
    renderer = TurnRenderer(both, "exe_1")
    renderer.start()
    try:
        for event in events:
            renderer.on_event(event)
        result = renderer.finish()
    finally:
        renderer.close()
    return result, out.getvalue(), err.getvalue()


def screen(text: str) -> str:
    return _CONTROL.sub("", text)


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


def test_an_answer_that_adds_something_is_printed_once_as_plain_text_off_a_terminal() -> None:
    events = Events().shell_turn("ls", ["a.txt\n"], "There is **one** file: a.txt.")
    _, out, _ = render(events)
    assert out == "$ ls\na.txt\nThere is **one** file: a.txt.\n"


def test_on_a_terminal_the_answer_is_markdown_below_the_task_list() -> None:
    events = Events().shell_turn("ls", ["a.txt\n"], "There is **one** file: a.txt.")
    result, out, err = render(events, terminal=True)
    assert result.ok
    assert "There is one file: a.txt." in out and "**" not in out
    # Output scrolls above the live region (through its console); the final list stays.
    assert screen(err).index("a.txt") < screen(err).rindex("✓ $ ls")
    assert "✓ completed" in err


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


def _agent_turn(maker: Events) -> list[StreamEvent]:
    """A model harness's turn: a plan, a failing command, an edit, a tool call, an answer."""
    failing = {"id": "c1", "type": "commandExecution", "command": "pytest -q"}
    edit: dict[str, Any] = {"id": "f1", "type": "fileChange", "status": "completed"}
    edit["changes"] = [{"path": "src/app.py", "kind": {"type": "update"}, "diff": ""}]
    tool: dict[str, Any] = {"id": "t1", "type": "mcpToolCall", "server": "github"}
    tool["tool"] = "create_issue"
    tool["arguments"] = {"title": "Flaky test"}
    plan = [{"step": "Run the tests", "status": "completed"}]
    plan.append({"step": "Fix the bug", "status": "inProgress"})
    answer = "Fixed the **off-by-one** in `src/app.py`."
    return [
        maker.line("turn/plan/updated", plan=plan),
        maker.line("item/started", item=failing),
        maker.line("item/commandExecution/outputDelta", itemId="c1", delta="1 failed\n"),
        maker.line("item/completed", item={**failing, "status": "failed", "exitCode": 1}),
        maker.line("item/completed", item=edit),
        maker.line("item/started", item={**tool, "status": "inProgress"}),
        maker.line("item/completed", item={**tool, "status": "completed", "result": None}),
        *[
            maker.line("item/agentMessage/delta", itemId="m1", delta=part)
            for part in ["Fixed the **off-by-one**", " in `src/app.py`."]
        ],
        maker.line("item/completed", item={"id": "m1", "type": "agentMessage", "text": answer}),
        maker.line("turn/completed", turn={"status": "completed"}),
        maker.make("session.execution_completed", {"result_text": answer}),
    ]


def test_off_a_terminal_each_notable_task_ends_with_one_plain_line() -> None:
    result, out, err = render(_agent_turn(Events()))
    assert out == "$ pytest -q\n1 failed\nFixed the **off-by-one** in `src/app.py`.\n"
    assert err.splitlines() == [
        "plan: ☑ Run the tests · ◐ Fix the bug",
        "✗ $ pytest -q · exit status 1",
        "✓ edited src/app.py",
        "✓ github.create_issue · Flaky test",
        err.splitlines()[-1],
    ]
    assert err.splitlines()[-1].startswith("✓ completed · exit status 1")
    assert result.ok and result.exit_code == 1


def test_on_a_terminal_the_live_task_list_marks_every_task_and_keeps_the_plan() -> None:
    _, out, err = render(_agent_turn(Events()), terminal=True)
    final = screen(err).rsplit("1 failed\n", 1)[1]
    for row in [
        "✗ $ pytest -q · exit status 1",
        "✓ edited src/app.py",
        "✓ github.create_issue · Flaky test",
        "plan",
        "☑ Run the tests",
        "◐ Fix the bug",
    ]:
        assert row in final
    # Streamed text is previewed live, then shown once: as the Markdown answer on stdout.
    assert out == "Fixed the off-by-one in src/app.py.\n"


def test_a_running_task_shows_a_spinner_until_it_ends() -> None:
    both, _, err = consoles(terminal=True)
    renderer = TurnRenderer(both, "exe_1")
    maker = Events()
    renderer.start()
    item = {"id": "c1", "type": "commandExecution", "command": "sleep 5"}
    renderer.on_event(maker.line("item/started", item=item))
    renderer.close()
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] \$ sleep 5", screen(err.getvalue()))
    assert "✓ $ sleep 5" not in err.getvalue()


def test_an_intermediate_message_is_shown_before_the_work_that_follows_it() -> None:
    maker = Events()
    item = {"id": "c1", "type": "commandExecution", "command": "ls"}
    events = [
        maker.line("item/completed", item={"id": "m0", "type": "agentMessage", "text": "Looking."}),
        maker.line("item/started", item=item),
        maker.line("item/completed", item={**item, "status": "completed", "exitCode": 0}),
        maker.line("item/completed", item={"id": "m1", "type": "agentMessage", "text": "Empty."}),
        maker.make("session.execution_completed", {"result_text": "Empty."}),
    ]
    _, out, err = render(events, terminal=True)
    assert screen(err).index("Looking.") < screen(err).index("$ ls")
    assert out == "Empty.\n" and "Empty." not in err


def test_retried_errors_are_warnings_and_the_turn_goes_on() -> None:
    maker = Events()
    events = [
        maker.line("error", error={"message": "reconnecting 1/5"}, willRetry=True),
        maker.line("item/completed", item={"id": "m", "type": "agentMessage", "text": "ok"}),
        maker.make("session.execution_completed", {"result_text": "ok"}),
    ]
    result, out, err = render(events)
    assert result.ok and out == "ok\n"
    assert "harness warning: reconnecting 1/5" in err


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
def test_every_harness_dialect_looks_the_same_in_the_cli(terminal: bool) -> None:
    """The docs-based codex, Claude Code and `codex exec` turns of tests/render, on screen."""
    seen = {}
    for name in ("codex_sample", "claudecode_sample", "codex_exec_sample"):
        events, _ = stored_events(read_lines(STREAMS / f"{name}.jsonl"))
        result, out, err = render([StreamEvent.from_json(e) for e in events], terminal)
        assert result.ok
        # Only the command line (`/bin/bash -lc ls` or `ls`) and the timings differ, and
        # Claude's output lacks the final newline.
        seen[name] = (
            re.sub(r"\$ .*ls", "$ ls", screen(out)).replace("src\n\n", "src\n"),
            re.sub(r" · \d+(\.\d)?s|\$ .*ls", "", screen(err)),
        )
    assert seen["codex_sample"] == seen["claudecode_sample"]
    assert seen["codex_sample"][0] == seen["codex_exec_sample"][0]


async def test_output_arriving_together_is_printed_together_and_in_order() -> None:
    both, out, _ = consoles()
    renderer = TurnRenderer(both, "exe_1")
    maker = Events()
    renderer.start()
    item = {"id": "c1", "type": "commandExecution", "command": "seq 3"}
    renderer.on_event(maker.line("item/started", item=item))
    for n in range(1, 4):
        delta = maker.line("item/commandExecution/outputDelta", itemId="c1", delta=f"{n}\n")
        renderer.on_event(delta)
    assert out.getvalue() == "$ seq 3\n"  # held for a moment, not printed line by line
    await asyncio.sleep(0.2)
    assert out.getvalue() == "$ seq 3\n1\n2\n3\n"
    renderer.on_event(maker.line("item/commandExecution/outputDelta", itemId="c1", delta="4"))
    renderer.on_event(maker.make("session.execution_completed", {"result_text": "1\n2\n3\n4"}))
    renderer.finish()
    renderer.close()
    assert out.getvalue() == "$ seq 3\n1\n2\n3\n4\n"


def test_text_cut_off_by_a_failed_turn_stays_on_screen() -> None:
    maker = Events()
    events = [
        maker.line("item/agentMessage/delta", itemId="m", delta="I was about to"),
        maker.make("session.execution_failed", {"error": "sandbox vanished"}),
    ]
    for terminal in (False, True):
        result, out, err = render(events, terminal)
        assert result.status == "failed"
        assert "I was about to" in screen(out + err)
        assert "✗ failed: sandbox vanished" in err
