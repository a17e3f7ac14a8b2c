"""The `chiron` harness end to end: the real harness process against loopback fake model APIs.

Every test that concerns the API runs on both providers (OpenAI Chat Completions and Anthropic
Messages), through the official SDKs loaded from `CHIRON_SDK_PATH` as inside a sandbox.
"""

from __future__ import annotations

import json
import shlex
import sysconfig
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.fake_models.anthropic_messages import AnthropicMessagesServer
from tests.fake_models.base import FakeModelServer, ModelRequest, Reply, ToolCall
from tests.fake_models.openai_chat import OpenAIChatServer
from tests.fixtures.harness_streams import record_stream, recording
from tests.harness.conftest import Message, agent_texts, command_started, ending, items
from tests.harness.model_rig import ModelRig, serving

SDK_PATH = sysconfig.get_paths()["purelib"]


class ChironRig(ModelRig):
    """The `chiron` harness on one provider's fake API, with a folder of tool CLIs on its PATH."""

    request_wait_s = 30.0

    def __init__(self, provider: str, fake: FakeModelServer, root: Path) -> None:
        self.provider = provider
        self.tools = root / "tools"
        self.tools.mkdir()
        super().__init__(
            "chiron",
            fake,
            root,
            {
                "CHIRON_SDK_PATH": SDK_PATH,
                "CHIRON_MODEL_PROVIDER": provider,
                "CHIRON_MODEL": "fake-model",
                "PATH": f"{self.tools}:/usr/bin:/bin",
                "CHIRON_MODEL_MAX_RETRIES": "2",
                "CHIRON_MODEL_RETRY_BASE_S": "0.05",
                "CHIRON_MODEL_RETRY_MAX_S": "1",
                "CHIRON_MODEL_TIMEOUT_S": "10",
            },
        )


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def rig(provider: str, tmp_path: Path) -> AsyncIterator[ChironRig]:
    fake = OpenAIChatServer() if provider == "openai" else AnthropicMessagesServer()
    async with serving(fake, lambda: ChironRig(provider, fake, tmp_path)) as setup:
        yield setup


# -- what the requests carry, in either dialect ---------------------------------------------


def conversation(request: ModelRequest) -> list[tuple[str, str]]:
    """(role, text) of every message: role `tool` for tool results, text blocks joined."""
    found: list[tuple[str, str]] = []
    for message in request.body["messages"]:
        content = message.get("content")
        if message["role"] == "tool":
            found.append(("tool", content))
        elif isinstance(content, str):
            found.append((message["role"], content))
        elif content is None:
            found.append((message["role"], ""))
        else:
            for block in content:
                if block["type"] == "tool_result":
                    found.append(("tool", block["content"]))
                elif block["type"] == "text":
                    found.append((message["role"], block["text"]))
    return [(role, text) for role, text in found if role != "system"]


def tool_results(request: ModelRequest) -> list[str]:
    return [text for role, text in conversation(request) if role == "tool"]


def tool_call_ids(request: ModelRequest) -> list[str]:
    ids = []
    for message in request.body["messages"]:
        for call in message.get("tool_calls") or []:
            ids.append(call["id"])
        if isinstance(message.get("content"), list):
            ids.extend(b["id"] for b in message["content"] if b["type"] == "tool_use")
    return ids


def result_ids(request: ModelRequest) -> list[str]:
    ids = []
    for message in request.body["messages"]:
        if message["role"] == "tool":
            ids.append(message["tool_call_id"])
        elif isinstance(message.get("content"), list):
            ids.extend(b["tool_use_id"] for b in message["content"] if b["type"] == "tool_result")
    return ids


def offered_tools(request: ModelRequest) -> set[str]:
    return {t["function"]["name"] if "function" in t else t["name"] for t in request.body["tools"]}


def system_prompt(request: ModelRequest) -> str:
    if "system" in request.body:
        text: str = request.body["system"]
        return text
    first = request.body["messages"][0]
    assert first["role"] == "system"
    content: str = first["content"]
    return content


def retry_errors(messages: list[Message]) -> list[str]:
    found = []
    for m in messages:
        if m["method"] == "error":
            assert m["params"]["willRetry"] is True
            found.append(m["params"]["error"]["message"])
    return found


def expected_key_header(rig: ChironRig) -> str:
    """The placeholder key, sent the way each SDK sends a key."""
    return "Bearer OPENAI_API_KEY" if rig.provider == "openai" else "ANTHROPIC_API_KEY"


def auth_header(rig: ChironRig, request: ModelRequest) -> str | None:
    if rig.provider == "openai":
        return request.header("authorization")
    return request.header("x-api-key")


TEST_FILE = """\
import unittest


class MathTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(1 + 1, 2)

    def test_mul(self):
        self.assertEqual(3 * 4, 12)
"""


# -- a whole turn ---------------------------------------------------------------------------


async def test_a_turn_writes_a_file_runs_its_tests_and_answers(rig: ChironRig) -> None:
    rig.fake.add(
        Reply(
            text="I will write the tests first.",
            tool_calls=(ToolCall("write_file", {"path": "test_math.py", "content": TEST_FILE}),),
        ),
        Reply(tool_calls=(ToolCall("shell", {"command": "python3 -m unittest -v test_math"}),)),
        Reply(text="Both tests pass.", chunks=4),
    )
    rig.start()
    rig.user("write test_math.py and run it")
    messages = await rig.turn()

    assert messages[0]["method"] == "thread/started"
    assert messages[1]["method"] == "turn/started"
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages) == ["I will write the tests first.", "Both tests pass."]
    final_id = items(messages, "agentMessage")[-1]["id"]
    streamed = [
        m["params"]["delta"]
        for m in messages
        if m["method"] == "item/agentMessage/delta" and m["params"]["itemId"] == final_id
    ]
    assert len(streamed) > 1 and "".join(streamed) == "Both tests pass."

    assert (rig.workspace / "test_math.py").read_text() == TEST_FILE
    [change] = items(messages, "fileChange")
    assert change["status"] == "completed"
    assert change["changes"][0]["path"] == str(rig.workspace / "test_math.py")
    assert change["changes"][0]["kind"] == {"type": "add"}
    assert "+    def test_add(self):" in change["changes"][0]["diff"]
    [command] = items(messages, "commandExecution")
    assert (command["command"], command["exitCode"], command["status"]) == (
        "python3 -m unittest -v test_math",
        0,
        "completed",
    )
    output = "".join(
        m["params"]["delta"]
        for m in messages
        if m["method"] == "item/commandExecution/outputDelta"
        and m["params"]["itemId"] == command["id"]
    )
    assert "Ran 2 tests" in output and "OK" in output

    first, second, third = rig.fake.model_requests()
    for request in (first, second, third):
        assert auth_header(rig, request) == expected_key_header(rig)
        assert request.body["model"] == "fake-model" and request.body["stream"] is True
    assert offered_tools(first) == {
        "shell",
        "read_file",
        "write_file",
        "list_files",
        "list_tools",
        "run_tool",
    }
    assert str(rig.workspace) in system_prompt(first)
    assert conversation(first) == [("user", "write test_math.py and run it")]
    assert tool_results(second) == [f"created test_math.py ({len(TEST_FILE)} bytes)"]
    [test_run] = tool_results(third)[1:]
    assert test_run.startswith("exit code: 0\n") and "Ran 2 tests" in test_run
    assert tool_call_ids(third) == result_ids(third)
    if recording() and rig.provider == "openai":
        record_stream("chiron", messages, rig.workspace)


async def test_a_failing_command_reports_its_exit_code(rig: ChironRig) -> None:
    rig.fake.add(
        Reply(tool_calls=(ToolCall("shell", {"command": "echo broken >&2; exit 3"}),)),
        Reply(text="It failed with 3."),
    )
    rig.start()
    rig.user("run it")
    messages = await rig.turn()
    [command] = items(messages, "commandExecution")
    assert (command["exitCode"], command["status"], command["aggregatedOutput"]) == (
        3,
        "failed",
        "broken\n",
    )
    assert tool_results(rig.fake.model_requests()[1]) == ["exit code: 3\nbroken\n"]
    assert agent_texts(messages)[-1] == "It failed with 3."


# -- memory ---------------------------------------------------------------------------------


async def test_history_carries_over_turns_and_a_harness_restart(rig: ChironRig) -> None:
    rig.fake.add(Reply(text="Hello Ada."), Reply(text="You are Ada."), Reply(text="Still Ada."))
    rig.start()
    rig.user("my name is Ada")
    first = await rig.turn()
    thread_id = first[0]["params"]["thread"]["id"]
    rig.user("what is my name?")
    second = await rig.turn()
    assert [m["method"] for m in second[:1]] == ["turn/started"]  # no second thread/started
    assert conversation(rig.fake.model_requests()[1]) == [
        ("user", "my name is Ada"),
        ("assistant", "Hello Ada."),
        ("user", "what is my name?"),
    ]

    rig.restart()
    rig.user("and now?")
    third = await rig.turn()
    assert third[0] == {"method": "thread/started", "params": {"thread": {"id": thread_id}}}
    assert ending(third)["status"] == "completed"
    assert conversation(rig.fake.model_requests()[2]) == [
        ("user", "my name is Ada"),
        ("assistant", "Hello Ada."),
        ("user", "what is my name?"),
        ("assistant", "You are Ada."),
        ("user", "and now?"),
    ]
    assert (rig.home / ".chiron-harness" / "chiron-agent.json").is_file()


async def test_a_transcript_seeds_a_new_sandbox_and_the_thread_id_is_kept(rig: ChironRig) -> None:
    rig.fake.add(Reply(text="Yes, 42."))
    rig.start()
    transcript = [
        {"role": "user", "text": "remember 42"},
        {"role": "assistant", "text": "I will remember 42."},
    ]
    rig.user("do you remember?", transcript=transcript, harness_thread_id="thread_earlier1")
    messages = await rig.turn()
    assert messages[0]["params"]["thread"]["id"] == "thread_earlier1"
    assert conversation(rig.fake.model_requests()[0]) == [
        ("user", "remember 42"),
        ("assistant", "I will remember 42."),
        ("user", "do you remember?"),
    ]


async def test_a_saved_history_wins_over_a_transcript(rig: ChironRig) -> None:
    rig.start()
    rig.user("first")
    await rig.turn()
    rig.restart()
    rig.user("second", transcript=[{"role": "user", "text": "something else"}])
    await rig.turn()
    assert conversation(rig.fake.model_requests()[1]) == [
        ("user", "first"),
        ("assistant", "done"),
        ("user", "second"),
    ]


async def test_the_session_system_prompt_follows_the_base_prompt(rig: ChironRig) -> None:
    rig.start()
    rig.user("hi", system_prompt="Always answer in French.")
    await rig.turn()
    prompt = system_prompt(rig.fake.model_requests()[0])
    assert prompt.startswith("You are Chiron") and prompt.endswith("Always answer in French.")


# -- steering and interrupts ----------------------------------------------------------------


async def test_steering_joins_the_running_turn(rig: ChironRig) -> None:
    rig.fake.add(
        Reply(tool_calls=(ToolCall("shell", {"command": "sleep 1; echo slept"}),)),
        Reply(text="Noted, using blue."),
    )
    rig.start()
    rig.user("paint it")
    await rig.until(command_started)
    rig.user("use blue, please")
    messages = await rig.turn()
    assert ending(messages)["status"] == "completed"
    assert [m["method"] for m in messages].count("turn/started") == 0
    assert agent_texts(messages) == ["Noted, using blue."]
    second = rig.fake.model_requests()[1]
    assert conversation(second)[-2:] == [
        ("tool", "exit code: 0\nslept\n"),
        ("user", "use blue, please"),
    ]


async def test_steering_cut_short_by_an_interrupt_stays_in_the_history(rig: ChironRig) -> None:
    rig.fake.add(Reply(hang=True))
    rig.start()
    rig.user("question")
    await rig.requests(1)
    rig.user("one more thing")
    rig.h.send({"type": "interrupt"})
    assert ending(await rig.turn())["status"] == "interrupted"
    rig.user("next")
    await rig.turn()
    assert conversation(rig.fake.model_requests()[-1]) == [
        ("user", "question"),
        ("user", "one more thing"),
        ("user", "next"),
    ]


async def test_interrupt_kills_a_long_command(rig: ChironRig) -> None:
    rig.fake.add(
        Reply(tool_calls=(ToolCall("shell", {"command": "echo started; sleep 30"}),)),
        Reply(text="fine"),
    )
    rig.start()
    rig.user("wait a long time")
    await rig.until(lambda m: m["method"] == "item/commandExecution/outputDelta")
    started = time.monotonic()
    rig.h.send({"type": "interrupt", "reason": "user"})
    messages = await rig.turn()
    assert time.monotonic() - started < 3
    assert ending(messages)["status"] == "interrupted"
    [command] = items(messages, "commandExecution")
    assert command["status"] == "failed" and command["exitCode"] != 0

    # The next turn's request is valid: the interrupted call has its result.
    rig.user("are you there?")
    assert ending(await rig.turn())["status"] == "completed"
    request = rig.fake.model_requests()[1]
    assert tool_call_ids(request) == result_ids(request)
    assert tool_results(request)[0].startswith("interrupted: the command was killed")


async def test_interrupt_aborts_a_model_that_never_answers(rig: ChironRig) -> None:
    rig.fake.add(Reply(hang=True))
    rig.start()
    rig.user("hello?")
    await rig.requests(1)
    started = time.monotonic()
    rig.h.send({"type": "interrupt"})
    messages = await rig.turn()
    assert time.monotonic() - started < 2
    assert ending(messages)["status"] == "interrupted"
    rig.user("again")
    assert agent_texts(await rig.turn()) == ["done"]


async def test_an_interrupt_does_not_wait_for_the_sdk_import(rig: ChironRig) -> None:
    rig.start()
    rig.user("hi")  # the SDK is still being imported: the harness just started
    await rig.until(lambda m: m["method"] == "turn/started")
    started = time.monotonic()
    rig.h.send({"type": "interrupt"})
    messages = await rig.turn()
    assert time.monotonic() - started < 1.5
    assert ending(messages)["status"] == "interrupted"


async def test_interrupt_aborts_a_stalled_stream_and_keeps_what_arrived(rig: ChironRig) -> None:
    # Stall after the first text delta (OpenAI: role chunk first; Anthropic: message_start,
    # ping and content_block_start first).
    stall = 2 if rig.provider == "openai" else 4
    rig.fake.add(Reply(text="half an answer", chunks=2, hang_after=stall))
    rig.start()
    rig.user("tell me")
    await rig.until(lambda m: m["method"] == "item/agentMessage/delta")
    started = time.monotonic()
    rig.h.send({"type": "interrupt"})
    messages = await rig.turn()
    assert time.monotonic() - started < 2
    assert ending(messages)["status"] == "interrupted"
    rig.user("go on")
    await rig.turn()
    [(_, kept)] = [m for m in conversation(rig.fake.model_requests()[1]) if m[0] == "assistant"]
    assert "half an answer".startswith(kept) and kept


# -- model API failures ---------------------------------------------------------------------


async def test_an_auth_error_fails_the_turn_at_once(rig: ChironRig) -> None:
    rig.fake.add(Reply(status=401, error_message="invalid key"))
    rig.start()
    rig.user("hi")
    messages = await rig.turn()
    turn = ending(messages)
    assert turn["status"] == "failed"
    assert turn["error"]["message"] == "model API returned 401 Unauthorized: invalid key"
    assert retry_errors(messages) == []
    assert len(rig.fake.model_requests()) == 1


async def test_a_bad_request_fails_the_turn_at_once(rig: ChironRig) -> None:
    rig.fake.add(Reply(status=400, error_message="unknown model"))
    rig.start()
    rig.user("hi")
    turn = ending(await rig.turn())
    assert turn["error"]["message"] == "model API returned 400 Bad Request: unknown model"


async def test_a_rate_limit_is_retried_after_the_time_asked_for(rig: ChironRig) -> None:
    arrivals: list[float] = []

    def arrive(reply: Reply) -> Callable[[ModelRequest], Reply]:
        def entry(request: ModelRequest) -> Reply:
            arrivals.append(time.monotonic())
            return reply

        return entry

    rig.fake.add(
        arrive(Reply(status=429, retry_after=0.4, error_message="slow down")),
        arrive(Reply(text="made it")),
    )
    rig.start()
    rig.user("hi")
    messages = await rig.turn()
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages) == ["made it"]
    [error] = retry_errors(messages)
    assert error.startswith("model API returned 429 Too Many Requests: slow down; retrying in 0.4")
    assert arrivals[1] - arrivals[0] >= 0.4


async def test_a_server_error_that_persists_fails_after_the_retries(rig: ChironRig) -> None:
    rig.fake.default = Reply(status=500, error_message="boom")
    rig.start()
    rig.user("hi")
    messages = await rig.turn()
    assert len(retry_errors(messages)) == 2
    turn = ending(messages)
    assert turn["status"] == "failed"
    assert turn["error"]["message"] == (
        "model API returned 500 Internal Server Error: boom "
        "(gave up after 3 attempts; CHIRON_MODEL_MAX_RETRIES)"
    )
    assert len(rig.fake.model_requests()) == 3


async def test_a_stream_cut_midway_is_retried(rig: ChironRig) -> None:
    rig.fake.add(Reply(text="this gets cut off", chunks=6, cut_after=4), Reply(text="whole answer"))
    rig.start()
    rig.user("hi")
    messages = await rig.turn()
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "whole answer"
    [error] = retry_errors(messages)
    assert "retrying" in error
    assert len(rig.fake.model_requests()) == 2
    # The cut attempt is not part of the conversation.
    rig.user("again")
    await rig.turn()
    assert ("assistant", "whole answer") in conversation(rig.fake.model_requests()[2])
    assert all("cut" not in text for _, text in conversation(rig.fake.model_requests()[2]))


async def test_a_model_that_stays_silent_times_out_and_fails(rig: ChironRig) -> None:
    rig.fake.default = Reply(hang=True)
    rig.start(
        CHIRON_MODEL_TIMEOUT_S="0.5", CHIRON_MODEL_MAX_RETRIES="1", CHIRON_MODEL_RETRY_BASE_S="0.2"
    )
    rig.user("hi")
    messages = await rig.turn()
    assert retry_errors(messages) == [
        "the model API sent nothing for 0.5 s (CHIRON_MODEL_TIMEOUT_S); retrying in 0.2 s "
        "(retry 1 of 1)"
    ]
    assert ending(messages)["error"]["message"].startswith("the model API sent nothing for 0.5 s")


async def test_an_unreachable_api_is_retried_then_fails(
    rig: ChironRig, unused_tcp_port: int
) -> None:
    rig.start(
        CHIRON_OPENAI_BASE_URL=f"http://127.0.0.1:{unused_tcp_port}/v1",
        CHIRON_ANTHROPIC_BASE_URL=f"http://127.0.0.1:{unused_tcp_port}",
        CHIRON_MODEL_MAX_RETRIES="1",
    )
    rig.user("hi")
    messages = await rig.turn()
    [error] = retry_errors(messages)
    assert error.startswith(f"cannot reach the model API at http://127.0.0.1:{unused_tcp_port}")
    assert ending(messages)["status"] == "failed"


# -- tool calls -----------------------------------------------------------------------------


async def test_a_malformed_tool_call_is_explained_to_the_model(rig: ChironRig) -> None:
    rig.fake.add(
        Reply(tool_calls=(ToolCall("shell", "{not json"),)),
        Reply(tool_calls=(ToolCall("launch_rockets", {}),)),
        Reply(tool_calls=(ToolCall("shell", {"command": "echo fine"}),)),
        Reply(text="recovered"),
    )
    rig.start()
    rig.user("hi")
    messages = await rig.turn()
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "recovered"
    requests = rig.fake.model_requests()
    assert tool_results(requests[1])[0].startswith(
        "error: the arguments of shell are not valid JSON"
    )
    assert tool_results(requests[2])[1].startswith("error: unknown tool 'launch_rockets'")
    assert tool_results(requests[3])[2] == "exit code: 0\nfine\n"
    failed = [i for i in items(messages, "mcpToolCall") if i["status"] == "failed"]
    assert [i["tool"] for i in failed] == ["shell", "launch_rockets"]


async def test_a_model_that_keeps_sending_malformed_calls_fails_the_turn(rig: ChironRig) -> None:
    rig.fake.default = Reply(tool_calls=(ToolCall("write_file", {"path": "x.txt"}),))
    rig.start()
    rig.user("hi")
    turn = ending(await rig.turn())
    assert turn["status"] == "failed"
    assert turn["error"]["message"] == (
        "the model kept sending malformed tool calls: write_file needs the field 'content'"
    )
    assert len(rig.fake.model_requests()) == 3


async def test_endless_tool_calls_stop_at_the_step_limit(rig: ChironRig) -> None:
    rig.fake.default = Reply(tool_calls=(ToolCall("shell", {"command": "true"}),))
    rig.start(CHIRON_AGENT_MAX_STEPS="3")
    rig.user("loop forever")
    turn = ending(await rig.turn())
    assert turn["status"] == "failed"
    assert turn["error"]["message"] == (
        "stopped after 3 model steps without a final answer (CHIRON_AGENT_MAX_STEPS)"
    )
    assert len(rig.fake.model_requests()) == 3


async def test_write_file_stays_inside_the_workspace(rig: ChironRig, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    (rig.workspace / "link").symlink_to(tmp_path)
    rig.fake.add(
        Reply(
            tool_calls=(
                ToolCall("write_file", {"path": "../outside.txt", "content": "x"}),
                ToolCall("write_file", {"path": str(outside), "content": "x"}),
                ToolCall("write_file", {"path": "link/outside.txt", "content": "x"}),
                ToolCall("write_file", {"path": f"{rig.workspace}/sub/in.txt", "content": "in"}),
            )
        ),
        Reply(text="ok"),
    )
    rig.start()
    rig.user("write")
    messages = await rig.turn()
    assert not outside.exists()
    assert (rig.workspace / "sub" / "in.txt").read_text() == "in"
    results = tool_results(rig.fake.model_requests()[1])
    assert all("is outside the workspace" in r for r in results[:3])
    assert results[3] == "created sub/in.txt (2 bytes)"
    assert len(items(messages, "fileChange")) == 1


async def test_file_and_tool_cli_tools(rig: ChironRig) -> None:
    greet = rig.tools / "greet"
    greet.write_text('#!/bin/sh\necho "hello $1"\n')
    chiron_tools = rig.tools / "chiron-tools"
    chiron_tools.write_text('#!/bin/sh\n[ "$1" = list ] && echo "weather: the forecast"\n')
    for script in (greet, chiron_tools):
        script.chmod(0o755)
    (rig.workspace / "notes.txt").write_text("one\ntwo\nthree\n")
    rig.fake.add(
        Reply(
            tool_calls=(
                ToolCall("list_tools", {}),
                ToolCall("run_tool", {"tool": "greet", "args": ["the team"]}),
                ToolCall("run_tool", {"tool": "ls"}),
                ToolCall("read_file", {"path": "notes.txt", "offset": 2, "limit": 1}),
                ToolCall("list_files", {}),
            )
        ),
        Reply(text="done"),
    )
    rig.start()
    rig.user("look around")
    messages = await rig.turn()
    listing, greeting, not_a_tool, lines, files = tool_results(rig.fake.model_requests()[1])
    assert listing == (
        f"chiron-tools  {chiron_tools}\n"
        f"greet         {greet}\n\n"
        "`chiron-tools list`:\nweather: the forecast"
    )
    assert greeting == "exit code: 0\nhello the team\n"
    assert not_a_tool.startswith(
        "error: 'ls' is not an installed tool CLI (installed: chiron-tools, greet)"
    )
    assert lines == "two\n\n[… the file goes on; read on with offset=3]"
    assert files == "notes.txt"
    [command] = items(messages, "commandExecution")
    assert command["command"] == shlex.join([str(greet), "the team"])
    assert [i["tool"] for i in items(messages, "mcpToolCall")] == [
        "list_tools",
        "read_file",
        "list_files",
    ]


# -- settings -------------------------------------------------------------------------------


async def test_model_and_reasoning_overrides_reach_the_request(rig: ChironRig) -> None:
    rig.start()
    session = {"model": "session-model", "reasoning_effort": "low"}
    rig.user(
        "one",
        metadata=session,
        execution_metadata={"model": "exec-model", "reasoning_effort": "high"},
    )
    await rig.turn()
    rig.user("two", metadata=session)
    await rig.turn()
    rig.user("three")
    await rig.turn()
    first, second, third = (r.body for r in rig.fake.model_requests())
    assert [first["model"], second["model"], third["model"]] == [
        "exec-model",
        "session-model",
        "fake-model",
    ]
    if rig.provider == "openai":
        assert [first.get("reasoning_effort"), second.get("reasoning_effort")] == ["high", "low"]
        assert "reasoning_effort" not in third
    else:
        assert first["thinking"] == {"type": "enabled", "budget_tokens": 16000}
        assert first["max_tokens"] == 24000
        assert second["thinking"] == {"type": "enabled", "budget_tokens": 4000}
        assert "thinking" not in third and third["max_tokens"] == 8192


async def test_without_a_model_the_turn_fails_clearly(rig: ChironRig) -> None:
    rig.start(CHIRON_MODEL="")
    rig.user("hi")
    turn = ending(await rig.turn())
    assert turn["status"] == "failed"
    assert turn["error"]["message"].startswith("no model configured: set CHIRON_MODEL")
    assert rig.fake.model_requests() == []


async def test_a_provider_override_switches_the_api(rig: ChironRig) -> None:
    other = "anthropic" if rig.provider == "openai" else "openai"
    rig.start()
    rig.user("hi", execution_metadata={"provider": other})
    turn = ending(await rig.turn())
    # The fake speaks only its own dialect, so the other API's path is not found there.
    assert turn["status"] == "failed"
    assert turn["error"]["message"].startswith("model API returned 404 Not Found")
    other_path = "/v1/messages" if other == "anthropic" else "/v1/chat/completions"
    assert [r.path for r in rig.fake.requests] == [other_path]


async def test_anthropic_thinking_blocks_go_back_with_their_signature(tmp_path: Path) -> None:
    fake = AnthropicMessagesServer(
        script=[
            Reply(reasoning="let me think", tool_calls=(ToolCall("shell", {"command": "true"}),)),
            Reply(reasoning="now answer", text="done thinking"),
        ]
    )
    async with serving(fake, lambda: ChironRig("anthropic", fake, tmp_path)) as rig:
        rig.start()
        rig.user("think", execution_metadata={"reasoning_effort": "minimal"})
        messages = await rig.turn()
        assert [i["content"] for i in items(messages, "reasoning")] == [
            ["let me think"],
            ["now answer"],
        ]
        second = fake.model_requests()[1].body
        assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assistant = second["messages"][1]
        assert assistant["role"] == "assistant"
        assert assistant["content"][0]["type"] == "thinking"
        assert assistant["content"][0]["thinking"] == "let me think"
        assert assistant["content"][0]["signature"]


async def test_output_that_is_not_utf8_reaches_the_model_and_the_saved_history(
    rig: ChironRig,
) -> None:
    rig.fake.add(Reply(tool_calls=(ToolCall("shell", {"command": r"printf 'caf\xe9\n'"}),)))
    rig.start()
    rig.user("print it")
    assert ending(await rig.turn())["status"] == "completed"
    assert tool_results(rig.fake.model_requests()[1]) == ["exit code: 0\ncaf\ufffd\n"]
    state = json.loads((rig.home / ".chiron-harness" / "chiron-agent.json").read_text())
    assert state["messages"][2]["output"] == "exit code: 0\ncaf\ufffd\n"
