"""Every harness dialect renders into the same UI event shape; endings follow DESIGN.md §7."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chiron.harness import protocol
from chiron.render import (
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
    TurnNormalizer,
    UiEvent,
    normalize,
)
from tests.fixtures.record_shell_stream import record
from tests.render.stream_fixtures import fixture_paths, read_lines, stored_events

# The order a turn's events may come in, over the coalesced kinds: lifecycle first, then any
# mix of work, then the end. Item pairing is checked separately (see `_check_items`).
_WORK = (
    r"(text_delta |message |reasoning |plan |command_started |command_output "
    r"|command_finished |file_change |tool_call |error |output_line |status )"
)
SHAPE = re.compile(rf"^(status )*{_WORK}*(answer )?done $")
SAMPLES = ("codex_sample", "claudecode_sample", "codex_exec_sample")


def kinds(events: list[UiEvent]) -> list[str]:
    return [event.kind for event in events]


def skeleton(events: list[UiEvent]) -> list[str]:
    """The kinds that make a turn's visible structure (plan, reasoning, status may be anywhere)."""
    return [kind for kind in kinds(events) if kind not in ("status", "reasoning", "plan")]


def fixture(name: str) -> Path:
    path = next((p for p in fixture_paths() if p.stem == name), None)
    assert path is not None, f"missing fixture {name}.jsonl"
    return path


def line(message: dict[str, Any] | str) -> dict[str, Any]:
    payload = message if isinstance(message, str) else json.dumps(message)
    return {"event_type": "session.output.line", "payload": payload}


def note(method: str, **params: Any) -> dict[str, Any]:
    return line({"method": method, "params": params})


def ended(status: str, **payload: Any) -> dict[str, Any]:
    return {"event_type": f"session.execution_{status}", "payload": payload}


def _check_items(events: list[UiEvent]) -> None:
    open_commands: set[str] = set()
    open_tools: set[str] = set()
    texts: dict[str, str] = {}
    messages: dict[str, str] = {}
    for event in events:
        if isinstance(event, CommandStarted):
            assert event.item_id not in open_commands
            open_commands.add(event.item_id)
        elif isinstance(event, CommandOutput):
            assert event.item_id in open_commands, "output outside its command"
        elif isinstance(event, CommandFinished):
            open_commands.remove(event.item_id)
        elif isinstance(event, ToolCall) and event.status == "in_progress":
            open_tools.add(event.item_id)
        elif isinstance(event, ToolCall):
            open_tools.remove(event.item_id)
        elif isinstance(event, TextDelta):
            texts[event.item_id] = texts.get(event.item_id, "") + event.text
        elif isinstance(event, Message):
            messages[event.item_id] = messages.get(event.item_id, "") + event.text
    assert open_commands == set() and open_tools == set(), "an item was never closed"
    assert texts == messages, "a message's deltas do not add up to its text"


# -- recorded streams ----------------------------------------------------------------------


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda path: path.stem)
def test_every_recorded_stream_renders_into_the_shared_shape(path: Path) -> None:
    events, outcome = stored_events(read_lines(path))
    ui = normalize(events)
    sequence = " ".join(kinds(ui)) + " "
    assert SHAPE.match(sequence), sequence
    assert kinds(ui).count("done") == 1
    done = ui[-1]
    assert isinstance(done, Done) and done.status == outcome.status
    if outcome.status == "completed" and outcome.result_text:
        assert ui[-2] == Answer(outcome.result_text)
        assert done.result_text == outcome.result_text
    else:
        assert "answer" not in kinds(ui)
    if outcome.status == "failed":
        assert done.error == outcome.error
    _check_items(ui)
    assert all(json.loads(json.dumps(event.to_json()))["kind"] == event.kind for event in ui)


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda path: path.stem)
def test_harness_lines_alone_end_the_way_the_server_records_it(path: Path) -> None:
    lines = read_lines(path)
    events, outcome = stored_events(lines)
    from_lines = normalize(line(text) for text in lines[: len(events)])
    from_store = [e for e in normalize(events) if not isinstance(e, Status)]
    assert from_lines[-1].kind == "done"
    assert isinstance(from_lines[-1], Done) and from_lines[-1].status == outcome.status
    assert kinds(from_lines) == kinds(from_store)


def test_equivalent_turns_in_every_dialect_render_alike() -> None:
    """One task (list the files, write a note, answer) recorded from each dialect's docs."""
    rendered = {name: normalize(stored_events(read_lines(fixture(name)))[0]) for name in SAMPLES}
    expected = [
        "command_started",
        "command_output",
        "command_finished",
        "file_change",
        "text_delta",
        "message",
        "answer",
        "done",
    ]
    for name, ui in rendered.items():
        assert skeleton(ui) == expected, name
        assert ui[-2] == Answer(
            "The workspace holds `README.md` and `src/`.\n\n"
            "I added **NOTES.md** with a short summary."
        )
        changes = [e for e in ui if isinstance(e, FileChange)]
        assert changes[0].changes == (FileChangeEntry("/workspace/NOTES.md", "add"),), name
        plans = [e for e in ui if isinstance(e, Plan)]
        assert plans[0].steps[0] == PlanStep("List the workspace", plans[0].steps[0].status)
        assert plans[-1].steps == (
            PlanStep("List the workspace", "completed"),
            PlanStep("Write NOTES.md", "completed"),
        ), name
        (finished,) = [e for e in ui if isinstance(e, CommandFinished)]
        assert finished.status == "completed"
        (output,) = [e for e in ui if isinstance(e, CommandOutput)]
        assert output.text.split() == ["README.md", "src"]
        assert any(isinstance(e, Reasoning) for e in ui), name


def test_the_recorded_codex_and_claudecode_turns_render_alike() -> None:
    """Both real recordings run one task (create a file, show it, answer): one rendering."""
    names = {path.stem for path in fixture_paths()}
    if not {"codex", "claudecode"} <= names:
        pytest.skip("codex.jsonl and claudecode.jsonl are not both recorded yet")
    codex, claude = (
        normalize(stored_events(read_lines(fixture(name)))[0]) for name in ("codex", "claudecode")
    )
    assert skeleton(codex) == skeleton(claude)
    assert codex[-2:] == claude[-2:]  # the same answer and done
    for ui in (codex, claude):
        assert "command_output" in kinds(ui) and "command_finished" in kinds(ui)


def test_the_real_shell_turn_shows_its_command_then_answers_with_the_output() -> None:
    ui = normalize(stored_events(read_lines(fixture("shell")))[0])
    assert skeleton(ui) == [
        "command_started",
        "command_output",
        "command_finished",
        "text_delta",
        "message",
        "answer",
        "done",
    ]
    output = next(e for e in ui if isinstance(e, CommandOutput))
    assert output.text == "hello from the shell harness\nline 1\nline 2\nline 3\n"
    finished = next(e for e in ui if isinstance(e, CommandFinished))
    assert (finished.status, finished.exit_code) == ("completed", 0)
    assert ui[-2] == Answer(output.text)
    assert [e.phase for e in ui if isinstance(e, Status)] == [
        "queued",
        "starting",
        "sandbox_ready",
        "running",
    ]


def test_what_our_harness_protocol_builders_emit_renders_into_the_shape() -> None:
    """The notifications of chiron.harness.protocol, as the adapters send them."""
    t, u = "thread_1", "turn_1"
    changes = [{"path": "a.py", "kind": {"type": "update"}, "diff": "-x\n+y\n"}]
    messages = [
        protocol.thread_started(t),
        protocol.turn_started(t, u),
        protocol.reasoning_delta(t, u, "r1", "Checking a.py"),
        protocol.item_completed(t, u, protocol.reasoning_item("r1", "Checking a.py")),
        protocol.turn_error(t, u, "rate limited", will_retry=True),
        protocol.item_started(
            t, u, protocol.tool_call_item("t1", "chiron", "run_tool", {}, "inProgress")
        ),
        protocol.item_completed(
            t, u, protocol.tool_call_item("t1", "chiron", "run_tool", {}, "failed", error="no")
        ),
        protocol.item_completed(t, u, protocol.file_change_item("f1", changes, "completed")),
        protocol.agent_message_delta(t, u, "m1", "Fixed."),
        protocol.item_completed(t, u, protocol.agent_message_item("m1", "Fixed.")),
        protocol.turn_completed(t, u, "completed"),
    ]
    ui = normalize(line(message) for message in messages)
    assert ui == [
        Reasoning("r1", "Checking a.py"),
        Error("rate limited", will_retry=True),
        ToolCall("t1", "chiron", "run_tool", {}, "in_progress"),
        ToolCall("t1", "chiron", "run_tool", {}, "failed", error="no"),
        FileChange("f1", (FileChangeEntry("a.py", "update"),), "completed"),
        TextDelta("m1", "Fixed."),
        Message("m1", "Fixed."),
        Answer("Fixed."),
        Done("completed", "Fixed.", reason="completed"),
    ]
    failed = normalize([line(protocol.turn_failed(t, u, "model unreachable"))])
    assert failed == [
        Error("model unreachable"),
        Done("failed", error="model unreachable", reason="harness_error"),
    ]


def test_a_fresh_shell_recording_renders_like_the_stored_fixture() -> None:
    """Guards the fixture against drift: the harness of today still prints that turn."""
    fresh = [raw.decode() for raw in b"".join(record()).splitlines()]
    stored = read_lines(fixture("shell"))
    rendered = [normalize(stored_events(lines)[0]) for lines in (fresh, stored)]
    assert kinds(rendered[0]) == kinds(rendered[1])
    assert rendered[0][-2:] == rendered[1][-2:]  # the same answer and done


def test_live_feeding_sends_each_delta_as_it_arrives() -> None:
    normalizer = TurnNormalizer()
    events, _ = stored_events(read_lines(fixture("shell")))
    per_event = [normalizer.feed(event) for event in events]
    outputs = [[e.text for e in batch if isinstance(e, CommandOutput)] for batch in per_event]
    assert [texts for texts in outputs if texts] == [
        ["hello from the shell harness\n"],
        ["line 1\n"],
        ["line 2\n"],
        ["line 3\n"],
    ]
    assert normalizer.done and normalizer.finish() == []


# -- non-JSON output -----------------------------------------------------------------------


def test_non_json_lines_are_plain_output_and_never_end_a_turn() -> None:
    normalizer = TurnNormalizer()
    lookalikes = [
        "turn/completed",
        '{"method":"turn/completed","params":{"turn":{"status":"completed"}}',  # cut short
        "null",
        '["result", "done"]',
        "Traceback (most recent call last):",
    ]
    shown = [event for text in lookalikes for event in normalizer.feed(line(text))]
    assert shown == [OutputLine(text) for text in lookalikes]
    assert not normalizer.done
    assert normalizer.finish() == []


def test_non_json_lines_inside_a_turn_stay_in_order_and_the_turn_still_ends_once() -> None:
    ui = normalize(
        [
            note("item/started", item={"id": "c1", "type": "commandExecution", "command": "x"}),
            line("warning: plain text on stdout"),
            note("item/commandExecution/outputDelta", itemId="c1", delta="ok\n"),
            note("item/completed", item={"id": "c1", "type": "commandExecution", "exitCode": 0}),
            note("turn/completed", turn={"status": "completed"}),
            ended("completed", completion_reason="completed"),
        ]
    )
    assert kinds(ui) == [
        "command_started",
        "output_line",
        "command_output",
        "command_finished",
        "done",
    ]
    assert ui[1] == OutputLine("warning: plain text on stdout")
    assert ui[-1] == Done("completed", reason="completed")


# -- endings -------------------------------------------------------------------------------


def _interrupted_command(answer: str | None) -> list[dict[str, Any]]:
    item = {"id": "c1", "type": "commandExecution", "command": "sleep 30"}
    events = [
        note("item/started", item=item),
        note("item/commandExecution/outputDelta", itemId="c1", delta="go\n"),
        note("item/completed", item={**item, "status": "failed", "exitCode": 143}),
    ]
    if answer is not None:
        message = {"id": "m", "type": "agentMessage", "text": answer}
        events.append(note("item/completed", item=message))
    return [*events, note("turn/completed", turn={"status": "interrupted"})]


def test_an_interrupted_turn_without_an_answer_is_cancelled() -> None:
    from_lines = normalize(_interrupted_command(None))
    assert from_lines[-1] == Done("cancelled", reason="interrupted")
    served = normalize([*_interrupted_command(None), ended("cancelled", reason="interrupted")])
    assert served[-2:] == [
        CommandFinished("c1", "sleep 30", "failed", exit_code=143),
        Done("cancelled", reason="interrupted"),
    ]


def test_an_interrupted_turn_that_already_answered_completes_with_that_answer() -> None:
    ui = normalize(_interrupted_command("stopped early"))
    assert ui[-2:] == [
        Answer("stopped early"),
        Done("completed", "stopped early", reason="interrupted"),
    ]


def test_errors_that_will_be_retried_do_not_end_the_turn() -> None:
    normalizer = TurnNormalizer()
    retry = normalizer.feed(
        note("error", error={"message": "stream disconnected; retrying 1/5"}, willRetry=True)
    )
    assert retry == [Error("stream disconnected; retrying 1/5", will_retry=True)]
    assert not normalizer.done
    normalizer.feed(note("item/agentMessage/delta", itemId="m", delta="back"))
    message = {"id": "m", "type": "agentMessage", "text": "back"}
    normalizer.feed(note("item/completed", item=message))
    normalizer.feed(note("turn/completed", turn={"status": "completed"}))
    assert normalizer.feed(ended("completed", result_text="back"))[-1] == Done("completed", "back")


def test_a_failed_turn_reports_its_error_once_and_done_carries_it() -> None:
    ui = normalize(
        [
            note("error", error={"message": "usage limit reached"}, willRetry=False),
            # codex follows a fatal error with a failed turn/completed repeating it.
            note(
                "turn/completed",
                turn={"status": "failed", "error": {"message": "usage limit reached"}},
            ),
            ended("failed", error="usage limit reached", reason="harness_error"),
        ]
    )
    assert ui == [
        Error("usage limit reached"),
        Done("failed", error="usage limit reached", reason="harness_error"),
    ]


def test_a_failed_turn_completed_line_alone_still_reports_its_error() -> None:
    failed = {"status": "failed", "error": {"message": "boom"}}
    ui = normalize([note("turn/completed", turn=failed)])
    assert ui == [Error("boom"), Done("failed", error="boom", reason="harness_error")]


def test_a_lost_sandbox_closes_the_running_command_and_fails_the_turn() -> None:
    ui = normalize(
        [
            note("item/started", item={"id": "c1", "type": "commandExecution", "command": "make"}),
            ended("failed", error="sandbox vanished", reason="sandbox_lost"),
        ]
    )
    assert ui == [
        CommandStarted("c1", "make"),
        CommandFinished("c1", "make", "interrupted"),
        Done("failed", error="sandbox vanished", reason="sandbox_lost"),
    ]


def test_the_servers_terminal_event_wins_over_the_harness() -> None:
    ui = normalize(
        [
            note("item/completed", item={"id": "m", "type": "agentMessage", "text": "done"}),
            note("turn/completed", turn={"status": "completed"}),
            ended("cancelled", reason="max_duration_exceeded"),
        ]
    )
    assert ui[-1] == Done("cancelled", reason="max_duration_exceeded")
    assert "answer" not in kinds(ui)


def test_a_session_stream_renders_each_turn_to_its_own_done() -> None:
    def turn(text: str) -> list[dict[str, Any]]:
        return [
            {"event_type": "session.execution_queued", "payload": {"input_line_count": 1}},
            note("item/completed", item={"id": text, "type": "agentMessage", "text": text}),
            note("turn/completed", turn={"status": "completed"}),
            ended("completed", result_text=text, completion_reason="completed"),
        ]

    ui = normalize([*turn("first"), *turn("second")])
    assert [e for e in ui if isinstance(e, Answer | Done)] == [
        Answer("first"),
        Done("completed", "first", reason="completed"),
        Answer("second"),
        Done("completed", "second", reason="completed"),
    ]


# -- text coalescing -----------------------------------------------------------------------


def test_a_final_text_longer_than_what_streamed_sends_only_the_rest() -> None:
    ui = normalize(
        [
            note("item/agentMessage/delta", itemId="m", delta="Hel"),
            note("item/completed", item={"id": "m", "type": "agentMessage", "text": "Hello"}),
        ],
        merge=False,
    )
    assert ui == [TextDelta("m", "Hel"), TextDelta("m", "lo"), Message("m", "Hello")]
    assert normalize(
        [
            note("item/agentMessage/delta", itemId="m", delta="Hel"),
            note("item/agentMessage/delta", itemId="m", delta="lo"),
        ]
    ) == [TextDelta("m", "Hello")]


# -- flat dialect --------------------------------------------------------------------------


def test_flat_failed_turn_and_warning_items() -> None:
    ui = normalize(
        [
            line({"type": "item.completed", "item": {"id": "w", "type": "error", "message": "hm"}}),
            line({"type": "error", "message": "stream error: 500"}),
            line({"type": "turn.failed", "error": {"message": "stream error: 500"}}),
        ]
    )
    assert ui == [
        Error("hm", will_retry=True),
        Error("stream error: 500"),
        Done("failed", error="stream error: 500", reason="harness_error"),
    ]


def test_flat_tool_calls_reported_only_when_finished_still_start_first() -> None:
    item = {
        "id": "t1",
        "type": "mcp_tool_call",
        "server": "github",
        "tool": "create_issue",
        "arguments": {"title": "x"},
        "result": {"content": [{"type": "text", "text": "#12 created"}]},
        "status": "completed",
    }
    ui = normalize([line({"type": "item.completed", "item": item})])
    assert ui == [
        ToolCall("t1", "github", "create_issue", {"title": "x"}, "in_progress"),
        ToolCall("t1", "github", "create_issue", {"title": "x"}, "completed", "#12 created"),
    ]


# -- Claude stream-json --------------------------------------------------------------------


def _claude_tool(tool_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}
    return line({"type": "assistant", "message": {"id": f"msg_{tool_id}", "content": [block]}})


def _claude_result(tool_id: str, content: Any, *, is_error: bool = False) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": content}
    block["is_error"] = is_error
    return line({"type": "user", "message": {"role": "user", "content": [block]}})


def test_claude_tools_map_to_commands_file_changes_and_tool_calls() -> None:
    ui = normalize(
        [
            _claude_tool("b", "Bash", {"command": "false"}),
            _claude_result("b", "Exit code 1", is_error=True),
            _claude_tool("e", "Edit", {"file_path": "/w/a.py", "old_string": "a"}),
            _claude_result("e", "The file /w/a.py has been updated."),
            _claude_tool("m", "mcp__linear__create_issue", {"title": "Bug"}),
            _claude_result("m", [{"type": "text", "text": "LIN-7"}]),
        ]
    )
    assert ui == [
        CommandStarted("b", "false"),
        CommandOutput("b", "Exit code 1"),
        CommandFinished("b", "false", "failed"),
        FileChange("e", (FileChangeEntry("/w/a.py", "update"),), "completed"),
        ToolCall("m", "linear", "create_issue", {"title": "Bug"}, "in_progress"),
        ToolCall("m", "linear", "create_issue", {"title": "Bug"}, "completed", "LIN-7"),
    ]


def test_claude_text_without_partial_messages_arrives_whole() -> None:
    ui = normalize(
        [
            line({"type": "assistant", "message": {"id": "msg_1", "content": "All done."}}),
            line({"type": "result", "subtype": "success", "result": "All done."}),
        ]
    )
    assert ui == [
        TextDelta("msg_1", "All done."),
        Message("msg_1", "All done."),
        Answer("All done."),
        Done("completed", "All done.", reason="completed"),
    ]


def test_claude_error_result_fails_the_turn_with_its_text() -> None:
    ui = normalize([line({"type": "result", "subtype": "error_max_turns", "is_error": True})])
    error = "harness reported error_max_turns"
    assert ui == [Error(error), Done("failed", error=error, reason="harness_error")]


def test_every_event_serializes_with_its_kind() -> None:
    plan = Plan((PlanStep("a", "pending"),), "why")
    assert plan.to_json() == {
        "kind": "plan",
        "steps": [{"text": "a", "status": "pending"}],
        "explanation": "why",
    }
    assert Done("completed", "x").to_json() == {
        "kind": "done",
        "status": "completed",
        "result_text": "x",
        "error": None,
        "reason": None,
    }
