"""The `chiron` agent's parts with rules of their own: settings, tool-call checking, the history
and its conversion for each API, error classification, and command runs (real processes)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chiron.harness.agent import config
from chiron.harness.agent.anthropic_messages import messages_param, thinking_budget
from chiron.harness.agent.commands import HEAD_BYTES, TAIL_BYTES, CommandRun
from chiron.harness.agent.emitter import TurnEmitter
from chiron.harness.agent.history import INTERRUPTED_RESULT, History, tool_message, user_message
from chiron.harness.agent.model_api import ModelError, retry_after, status_error
from chiron.harness.agent.openai_chat import chat_messages
from chiron.harness.agent.tool_specs import MalformedToolCall, parse_arguments
from chiron.harness.agent.tools import MAX_READ_CHARS, ToolRunner
from chiron.harness.server import NdjsonWriter

BASE_ENV = {
    "CHIRON_MODEL": "m",
    "CHIRON_OPENAI_BASE_URL": "http://x/v1",
    "CHIRON_ANTHROPIC_BASE_URL": "http://x",
    "OPENAI_API_KEY": "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY": "ANTHROPIC_API_KEY",
}


# -- settings -------------------------------------------------------------------------------


def test_execution_metadata_wins_over_session_metadata_over_the_environment() -> None:
    context = {
        "metadata": {"model": "session", "reasoning_effort": "low", "provider": "anthropic"},
        "execution_metadata": {"model": "execution"},
    }
    settings = config.resolve(BASE_ENV, context)
    assert (settings.provider, settings.model, settings.reasoning_effort) == (
        "anthropic",
        "execution",
        "low",
    )
    assert settings.base_url == "http://x" and settings.api_key == "ANTHROPIC_API_KEY"
    assert (settings.max_steps, settings.max_retries, settings.timeout_s) == (50, 3, 120.0)


@pytest.mark.parametrize(
    ("env", "context", "message"),
    [
        ({"CHIRON_MODEL": ""}, None, "no model configured"),
        ({"CHIRON_MODEL_PROVIDER": "gemini"}, None, "model provider must be 'openai' or"),
        ({"CHIRON_AGENT_MAX_STEPS": "0"}, None, "CHIRON_AGENT_MAX_STEPS must be a positive"),
        ({"CHIRON_MODEL_TIMEOUT_S": "soon"}, None, "CHIRON_MODEL_TIMEOUT_S must be a positive"),
        ({"CHIRON_MODEL_MAX_RETRIES": "-1"}, None, "CHIRON_MODEL_MAX_RETRIES must be a 0 or"),
        ({"OPENAI_API_KEY": ""}, None, "OPENAI_API_KEY is not set"),
        ({}, {"execution_metadata": {"model": ["a"]}}, "execution_metadata `model` must be"),
    ],
)
def test_unusable_settings_are_named(
    env: dict[str, str], context: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.resolve({**BASE_ENV, **env}, context)


def test_no_retries_is_a_valid_setting() -> None:
    assert config.resolve({**BASE_ENV, "CHIRON_MODEL_MAX_RETRIES": "0"}, None).max_retries == 0


@pytest.mark.parametrize(
    ("effort", "budget"),
    [(None, None), ("none", None), ("minimal", 1024), ("medium", 10_000), ("xhigh", 24_000)],
)
def test_reasoning_effort_maps_to_a_thinking_budget(effort: str | None, budget: int | None) -> None:
    assert thinking_budget(effort) == budget


@pytest.mark.parametrize("effort", ["extreme", "512"])
def test_an_unknown_reasoning_effort_fails_for_anthropic(effort: str) -> None:
    with pytest.raises(ModelError) as caught:
        thinking_budget(effort)
    assert not caught.value.retryable


def test_a_numeric_reasoning_effort_is_the_budget() -> None:
    assert thinking_budget("2048") == 2048


# -- tool calls -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("rm_rf", "{}", "unknown tool 'rm_rf'; the tools are: shell, read_file"),
        ("shell", "{", "the arguments of shell are not valid JSON"),
        ("shell", '["ls"]', "the arguments of shell must be a JSON object, got list"),
        ("shell", "{}", "shell needs the field 'command'"),
        ("shell", '{"command": "ls", "cwd": "/"}', "shell has no field 'cwd'"),
        ("shell", '{"command": 5}', "shell: 'command' must be a string, got 5"),
        (
            "shell",
            '{"command": "ls", "timeout_s": 0}',
            "shell: 'timeout_s' must be an integer from 1 to 3600, got 0",
        ),
        (
            "shell",
            '{"command": "ls", "timeout_s": true}',
            "shell: 'timeout_s' must be an integer from 1 to 3600, got True",
        ),
        ("run_tool", '{"tool": "t", "args": [1]}', "run_tool: 'args' must be an array of strings"),
    ],
)
def test_malformed_tool_calls_are_explained(name: str, raw: str, problem: str) -> None:
    with pytest.raises(MalformedToolCall) as caught:
        parse_arguments(name, raw)
    assert str(caught.value).startswith(problem)


def test_well_formed_arguments_pass() -> None:
    assert parse_arguments("shell", '{"command": "ls", "timeout_s": 5.0}') == {
        "command": "ls",
        "timeout_s": 5,
    }
    assert parse_arguments("list_tools", "") == {}


# -- history --------------------------------------------------------------------------------


def _assistant(*call_ids: str, text: str = "") -> dict[str, Any]:
    calls = [{"id": i, "name": "shell", "arguments": '{"command": "ls"}'} for i in call_ids]
    return {"role": "assistant", "text": text, "reasoning": "", "tool_calls": calls}


def test_open_tool_calls_get_an_interrupted_result_before_anything_else(tmp_path: Path) -> None:
    history = History(str(tmp_path))
    history.messages = [
        user_message("go"),
        _assistant("a", "b", "c"),
        tool_message("a", "shell", "ok", is_error=False),
        user_message("steer"),
    ]
    history.close_open_tool_calls()
    assert [(m["role"], m.get("call_id"), m.get("output")) for m in history.messages] == [
        ("user", None, None),
        ("assistant", None, None),
        ("tool", "a", "ok"),
        ("tool", "b", INTERRUPTED_RESULT),
        ("tool", "c", INTERRUPTED_RESULT),
        ("user", None, None),
    ]


def test_history_survives_a_save_and_load(tmp_path: Path) -> None:
    history = History(str(tmp_path / "state"))
    history.thread_id = "thread_1"
    history.messages = [user_message("héllo"), _assistant(text="hi")]
    history.save()
    loaded = History(str(tmp_path / "state"))
    assert loaded.load()
    assert (loaded.thread_id, loaded.messages) == ("thread_1", history.messages)
    assert os.listdir(tmp_path / "state") == ["chiron-agent.json"]


def test_an_unreadable_state_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "chiron-agent.json").write_text("{not json")
    history = History(str(tmp_path))
    assert not history.load()
    assert history.messages == []


def test_anthropic_turns_merge_tool_results_and_steering_in_one_user_turn() -> None:
    history = [
        user_message("go"),
        _assistant("a", text="  "),
        tool_message("a", "shell", "", is_error=True),
        user_message("steer"),
        {
            "role": "assistant",
            "text": "",
            "reasoning": "",
            "tool_calls": [{"id": "b", "name": "shell", "arguments": "{broken"}],
            "thinking_blocks": [
                {"type": "thinking", "thinking": "hm", "signature": ""},
                {"type": "redacted_thinking", "data": "xyz"},
            ],
        },
        tool_message("b", "shell", "error: bad", is_error=True),
    ]
    assert messages_param(history) == [
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a", "name": "shell", "input": {"command": "ls"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "a",
                    "content": "(no output)",
                    "is_error": True,
                },
                {"type": "text", "text": "steer"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "tool_use", "id": "b", "name": "shell", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "b",
                    "content": "error: bad",
                    "is_error": True,
                }
            ],
        },
    ]


def test_chat_messages_send_tool_calls_and_results() -> None:
    history = [
        user_message("go"),
        _assistant("a"),
        tool_message("a", "shell", "out", is_error=False),
        {"role": "assistant", "text": "", "reasoning": "", "tool_calls": []},
    ]
    assert chat_messages("sys", history) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "shell", "arguments": '{"command": "ls"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "out"},
    ]


# -- model API errors -----------------------------------------------------------------------


def test_retry_after_accepts_milliseconds_seconds_and_dates() -> None:
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (408, True), (429, True), (529, True)],
)
def test_which_statuses_are_retried(status: int, retryable: bool) -> None:
    body = {"type": "error", "error": {"type": "x", "message": "why"}}
    error = status_error(status, body, "fallback", {"retry-after": "1"})
    assert error.retryable is retryable
    assert error.message.endswith(": why")
    assert error.retry_after == (1.0 if retryable else None)


def test_an_error_event_inside_a_stream_is_retried_unless_it_blames_the_request() -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert status_error(200, overloaded, "", None).retryable
    invalid = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    assert not status_error(200, invalid, "", None).retryable


# -- command runs ---------------------------------------------------------------------------


def _run(command: str, cwd: Path, timeout_s: float = 30) -> tuple[Any, list[str]]:
    deltas: list[str] = []
    result = CommandRun(command, str(cwd), timeout_s, deltas.extend).run()
    return result, deltas


def test_a_command_streams_lines_and_reports_its_exit_code(tmp_path: Path) -> None:
    result, deltas = _run("echo one; echo two >&2; printf three; exit 4", tmp_path)
    assert "".join(deltas) == "one\ntwo\nthree"
    assert (result.exit_code, result.output, result.timed_out, result.killed) == (
        4,
        "one\ntwo\nthree",
        False,
        False,
    )


def test_a_command_reads_an_empty_stdin(tmp_path: Path) -> None:
    result, _ = _run("cat; echo after", tmp_path, timeout_s=5)
    assert (result.exit_code, result.output) == (0, "after\n")


def test_long_output_keeps_its_head_and_tail(tmp_path: Path) -> None:
    result, _ = _run("seq 1 100000", tmp_path)
    assert result.output.startswith("1\n2\n")
    assert result.output.endswith("99999\n100000\n")
    assert "bytes of output omitted" in result.output
    assert len(result.output) < HEAD_BYTES + TAIL_BYTES + 100


def test_a_command_over_its_time_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = _run("sleep 30 & sleep 30; echo never", tmp_path, timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert result.timed_out and result.exit_code != 0
    assert "never" not in result.output


def test_kill_ends_a_command_from_another_thread(tmp_path: Path) -> None:
    run = CommandRun("trap '' TERM; sleep 30", str(tmp_path), 60, lambda _: None)
    threading.Timer(0.3, run.kill).start()
    started = time.monotonic()
    result = run.run()
    # TERM is ignored, so KILL follows after the grace period.
    assert time.monotonic() - started < 5
    assert result.killed and result.exit_code == 128 + 9


# -- file tools -----------------------------------------------------------------------------


@pytest.fixture
def tools(tmp_path: Path) -> ToolRunner:
    writer = NdjsonWriter(os.open(os.devnull, os.O_WRONLY))
    return ToolRunner(str(tmp_path), TurnEmitter(writer, "thread_t", "turn_t"), 30)


def test_read_file_past_the_end_says_how_long_the_file_is(
    tools: ToolRunner, tmp_path: Path
) -> None:
    (tmp_path / "f.txt").write_text("a\nb\nc")
    outcome = tools.run("read_file", {"path": "f.txt", "offset": 5})
    assert outcome.output == "(f.txt has 3 lines; nothing from line 5 on)"


def test_read_file_refuses_what_is_not_a_regular_file(tools: ToolRunner) -> None:
    outcome = tools.run("read_file", {"path": "/dev/stdin"})
    assert outcome.is_error
    assert outcome.output == "error: /dev/stdin is not a regular file; use shell to inspect it"


def test_read_file_stays_bounded_on_one_huge_line(tools: ToolRunner, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * (3 * MAX_READ_CHARS) + "\nend\n")
    outcome = tools.run("read_file", {"path": "big.txt"})
    assert outcome.output == (
        "x" * MAX_READ_CHARS + "\n[… line 1 is too long to show whole; read it with shell tools]"
    )


def test_list_files_recursively_skips_tool_caches(tools: ToolRunner, tmp_path: Path) -> None:
    for name in ("src/a.py", ".git/HEAD", "node_modules/x/y.js", "README"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    outcome = tools.run("list_files", {"recursive": True})
    assert outcome.output == "README\nsrc/\nsrc/a.py"
    assert tools.run("list_files", {"path": "nope"}).output == "error: no such directory: nope"
