"""The `codex` harness end to end: the real `codex app-server` against a loopback Responses API.

The harness process runs as in a sandbox (minus the sandbox): private HOME, the CLI from
`CHIRON_CLI_BIN`, placeholder keys, plain-HTTP base URLs on loopback.
Set CHIRON_RECORD_HARNESS_STREAMS=1 to rewrite tests/fixtures/harness_streams/codex.jsonl from
the text+command turn.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fake_models.base import ModelRequest, Reply, ToolCall
from tests.fake_models.responses import ResponsesServer, function_call_outputs, input_texts
from tests.fixtures.harness_streams import record_stream, recording
from tests.harness.conftest import HarnessProcess, agent_texts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLI_BIN = REPO / "harness-clis" / "node_modules" / ".bin"
Message = dict[str, Any]

if not (CLI_BIN / "codex").exists():
    pytest.skip(
        "the codex CLI is not installed (npm ci --prefix harness-clis)", allow_module_level=True
    )


class Rig:
    """A fake Responses API plus the codex harness process using it."""

    def __init__(self, fake: ResponsesServer, root: Path) -> None:
        self.fake = fake
        self.root = root
        self.workspace = root / "workspace"
        self.home = root / "home"
        self.workspace.mkdir()
        self.home.mkdir()
        self.env: dict[str, str] = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "CHIRON_CLI_BIN": str(CLI_BIN),
            "CHIRON_OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
            "CHIRON_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake.port}",
            "OPENAI_API_KEY": "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY": "ANTHROPIC_API_KEY",
            "NO_PROXY": "127.0.0.1,localhost",
            "CHIRON_MODEL_MAX_RETRIES": "1",
            "CHIRON_MODEL_TIMEOUT_S": "20",
        }
        self.harness: HarnessProcess | None = None

    def start(self, **env: str) -> HarnessProcess:
        self.env.update(env)
        self.harness = HarnessProcess(self.workspace, "codex", self.env)
        return self.harness

    def stop(self) -> None:
        if self.harness is not None:
            if self.harness.proc.poll() is None:
                self.harness.proc.kill()
            self.harness.close()
            self.harness = None

    def restart(self, **env: str) -> HarnessProcess:
        assert self.harness is not None
        code, stderr = self.harness.close()
        assert code == 0, stderr
        return self.start(**env)

    @property
    def h(self) -> HarnessProcess:
        assert self.harness is not None
        return self.harness

    def user(self, text: str, **session_context: Any) -> None:
        line: Message = {"type": "user", "message": {"role": "user", "content": text}}
        if session_context:
            line["session_context"] = session_context
        self.h.send(line)

    async def turn(self, timeout: float = 30.0) -> list[Message]:
        return await asyncio.to_thread(self.h.turn, timeout)

    async def until(
        self, predicate: Callable[[Message], bool], timeout: float = 30.0
    ) -> list[Message]:
        return await asyncio.to_thread(self.h.until, predicate, timeout)

    async def requests(self, count: int, timeout: float = 15.0) -> list[ModelRequest]:
        deadline = time.monotonic() + timeout
        while len(self.fake.model_requests()) < count:
            assert time.monotonic() < deadline, f"fewer than {count} model requests arrived"
            await asyncio.sleep(0.02)
        return self.fake.model_requests()

    async def no_more_lines(self, wait: float = 0.5) -> None:
        """Nothing follows a turn's terminal line (a second terminal would leak onwards)."""
        await asyncio.sleep(wait)
        assert self.h.lines.empty(), self.h.lines.get_nowait()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    fake = ResponsesServer()
    await fake.start()
    setup = Rig(fake, tmp_path)
    try:
        yield setup
    finally:
        await asyncio.to_thread(setup.stop)
        await fake.stop()


def ending(messages: list[Message]) -> Message:
    terminals = [m for m in messages if m["method"] == "turn/completed"]
    assert terminals == [messages[-1]]
    assert not any(m["method"] == "error" and not m["params"]["willRetry"] for m in messages)
    turn: Message = messages[-1]["params"]["turn"]
    return turn


def items(messages: list[Message], kind: str) -> list[Message]:
    return [
        m["params"]["item"]
        for m in messages
        if m["method"] == "item/completed" and m["params"]["item"]["type"] == kind
    ]


def user_texts(request: ModelRequest) -> list[str]:
    # The first user message is codex's own environment context.
    return [t for t in input_texts(request, "user") if not t.startswith("<environment_context>")]


# -- turns --------------------------------------------------------------------------------


async def test_a_text_turn_answers_through_the_responses_api(rig: Rig) -> None:
    rig.fake.add(Reply(text="Paris is the capital.", chunks=4))
    rig.start()
    rig.user("What is the capital of France?", system_prompt="Answer in one sentence.")
    messages = await rig.turn()

    assert [m["method"] for m in messages[:2]] == ["thread/started", "turn/started"]
    thread_id = messages[0]["params"]["thread"]["id"]
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "Paris is the capital."
    deltas = [m["params"]["delta"] for m in messages if m["method"] == "item/agentMessage/delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Paris is the capital."
    turn_id = messages[1]["params"]["turn"]["id"]
    assert {m["params"]["turnId"] for m in messages if "turnId" in m["params"]} == {turn_id}
    assert {m["params"].get("threadId", thread_id) for m in messages} == {thread_id}

    [request] = rig.fake.model_requests()
    assert request.header("authorization") == "Bearer OPENAI_API_KEY"
    assert request.body["model"] == "gpt-5-codex" and request.body["stream"] is True
    assert user_texts(request) == ["What is the capital of France?"]
    assert "Answer in one sentence." in input_texts(request, "developer")
    assert "web_search" not in {t.get("type") for t in request.body["tools"]}
    await rig.no_more_lines()


async def test_a_command_turn_runs_in_the_workspace_and_sends_the_output_back(rig: Rig) -> None:
    rig.fake.add(
        Reply(
            reasoning="A shell command does it.",
            text="I will create the file.",
            tool_calls=(ToolCall("exec_command", {"cmd": "echo made > made.txt && cat made.txt"}),),
        ),
        Reply(text="The file holds: made"),
    )
    rig.start(CHIRON_MODEL="fake-codex-model")
    rig.user("create made.txt")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert (rig.workspace / "made.txt").read_text() == "made\n"
    [command] = items(messages, "commandExecution")
    assert "echo made > made.txt" in command["command"]
    assert (command["exitCode"], command["status"]) == (0, "completed")
    assert command["aggregatedOutput"] == "made\n"
    assert command["cwd"] == str(rig.workspace)
    assert agent_texts(messages) == ["I will create the file.", "The file holds: made"]
    [reasoning] = items(messages, "reasoning")
    assert reasoning["summary"] == ["A shell command does it."]

    first, second = rig.fake.model_requests()
    assert first.body["model"] == second.body["model"] == "fake-codex-model"
    [output] = function_call_outputs(second)
    assert output["call_id"] == "call_0_0" and "made" in output["output"]
    if recording():
        record_stream("codex", messages, rig.workspace)


async def test_a_second_turn_continues_the_conversation(rig: Rig) -> None:
    rig.fake.add(Reply(text="first answer"), Reply(text="second answer"))
    rig.start()
    rig.user("first question")
    first = await rig.turn()
    overrides = {"model": "other-model", "reasoning_effort": "high"}
    rig.user("second question", execution_metadata=overrides)
    second = await rig.turn()

    assert ending(first)["status"] == ending(second)["status"] == "completed"
    assert second[0]["method"] == "turn/started"  # the thread was announced once
    assert agent_texts(second) == ["second answer"]
    before, request = rig.fake.model_requests()
    assert user_texts(request) == ["first question", "second question"]
    assert "first answer" in request.text
    assert (before.body["model"], request.body["model"]) == ("gpt-5-codex", "other-model")
    assert request.body["reasoning"]["effort"] == "high"


async def test_a_turn_for_another_provider_fails_without_calling_a_model(rig: Rig) -> None:
    rig.start()
    rig.user("hello", metadata={"provider": "anthropic", "model": "claude-x"})
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "provider 'anthropic'" in turn["error"]["message"]
    assert rig.fake.model_requests() == []


async def test_a_new_harness_process_resumes_the_thread(rig: Rig) -> None:
    rig.fake.add(Reply(text="noted: 42"), Reply(text="it was 42"))
    rig.start()
    rig.user("remember 42")
    first = await rig.turn()
    thread_id = first[0]["params"]["thread"]["id"]

    rig.restart()
    rig.user("what was it?", harness_thread_id=thread_id, transcript=[])
    second = await rig.turn()

    assert second[0] == {"method": "thread/started", "params": {"thread": {"id": thread_id}}}
    assert ending(second)["status"] == "completed"
    assert agent_texts(second) == ["it was 42"]
    request = rig.fake.model_requests()[1]
    assert user_texts(request) == ["remember 42", "what was it?"]
    assert "noted: 42" in request.text


async def test_without_the_thread_state_the_transcript_seeds_a_new_thread(rig: Rig) -> None:
    rig.fake.add(Reply(text="it was 42"))
    rig.start()
    transcript = [
        {"role": "user", "text": "remember 42"},
        {"role": "assistant", "text": "noted: 42"},
    ]
    gone = "01a21976-0000-7000-8000-000000000000"
    rig.user("what was it?", harness_thread_id=gone, transcript=transcript)
    messages = await rig.turn()

    new_thread = messages[0]["params"]["thread"]["id"]
    assert messages[0]["method"] == "thread/started" and new_thread != gone
    assert ending(messages)["status"] == "completed"
    [request] = rig.fake.model_requests()
    [text] = user_texts(request)
    assert text.startswith("Conversation so far")
    assert text.index("User: remember 42") < text.index("Assistant: noted: 42")
    assert text.endswith("what was it?")


async def test_steering_reaches_the_model_within_the_turn(rig: Rig) -> None:
    rig.fake.add(
        Reply(tool_calls=(ToolCall("exec_command", {"cmd": "sleep 1.5; echo slept"}),)),
        Reply(text="steered"),
    )
    rig.start()
    rig.user("start something slow")
    await rig.until(
        lambda m: (
            m["method"] == "item/started" and m["params"]["item"]["type"] == "commandExecution"
        )
    )
    rig.user("also mention the weather")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "steered"
    first, second = rig.fake.model_requests()
    assert user_texts(first) == ["start something slow"]
    assert user_texts(second) == ["start something slow", "also mention the weather"]
    await rig.no_more_lines()


async def test_steering_after_the_last_answer_runs_inside_the_same_turn(rig: Rig) -> None:
    rig.fake.add(Reply(text="first"), Reply(text="answer to the steering"))
    rig.start()
    rig.user("question")
    # Steer as the turn ends: codex may refuse it (its turn is over), the harness turn then
    # runs it as a follow-up codex turn before its one terminal line.
    await rig.until(lambda m: m["method"] == "item/agentMessage/delta")
    rig.user("one more thing")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "answer to the steering"
    last = rig.fake.model_requests()[-1]
    assert user_texts(last)[-1] == "one more thing"
    await rig.no_more_lines()


async def test_an_interrupt_ends_a_hanging_model_request(rig: Rig) -> None:
    rig.fake.add(Reply(hang=True), Reply(text="back again"))
    rig.start()
    rig.user("hang please")
    await rig.requests(1)
    started = time.monotonic()
    rig.h.send({"type": "interrupt", "reason": "user"})
    messages = await rig.turn(timeout=10)

    assert ending(messages)["status"] == "interrupted"
    assert time.monotonic() - started < 3
    rig.user("are you there?")
    after = await rig.turn()
    assert ending(after)["status"] == "completed"
    assert agent_texts(after) == ["back again"]


async def test_an_interrupt_kills_the_running_command(rig: Rig) -> None:
    marker = "import time; time.sleep(31.25)"
    rig.fake.add(Reply(tool_calls=(ToolCall("exec_command", {"cmd": f"python3 -c '{marker}'"}),)))
    rig.start()
    rig.user("run it")
    await rig.until(
        lambda m: (
            m["method"] == "item/started" and m["params"]["item"]["type"] == "commandExecution"
        )
    )
    deadline = time.monotonic() + 5
    while not running(marker):
        assert time.monotonic() < deadline, "the command never started"
        await asyncio.sleep(0.05)
    started = time.monotonic()
    rig.h.send({"type": "interrupt", "reason": "user"})
    messages = await rig.turn(timeout=10)

    assert ending(messages)["status"] == "interrupted"
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 3
    while running(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not running(marker)


def running(marker: str) -> bool:
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


async def test_a_401_fails_the_turn_with_a_readable_error(rig: Rig) -> None:
    rig.fake.default = Reply(status=401, error_message="invalid key")
    rig.start()
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "401" in turn["error"]["message"] and "invalid key" in turn["error"]["message"]
    assert time.monotonic() - started < 15
    await rig.no_more_lines()


async def test_a_persistent_500_fails_the_turn_after_the_retries(rig: Rig) -> None:
    rig.fake.default = Reply(status=500, error_message="boom")
    rig.start()
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "server error" in turn["error"]["message"]
    assert time.monotonic() - started < 15
    # CHIRON_MODEL_MAX_RETRIES=1: codex's request and stream retries, each attempted twice.
    assert 2 <= len(rig.fake.model_requests()) <= 4
    assert [m["params"]["willRetry"] for m in messages if m["method"] == "error"] == [True]


async def test_a_silent_model_server_fails_the_turn_after_the_timeout(rig: Rig) -> None:
    rig.fake.default = Reply(hang=True)
    rig.start(CHIRON_MODEL_TIMEOUT_S="1", CHIRON_MODEL_MAX_RETRIES="0")
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn(timeout=15)

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "gave no answer for 1 s" in turn["error"]["message"]
    assert time.monotonic() - started < 8


async def test_a_dead_app_server_fails_the_turn_and_the_next_turn_restarts_it(rig: Rig) -> None:
    rig.fake.add(Reply(hang=True), Reply(text="resumed"))
    rig.start()
    rig.user("first")
    first_request = (await rig.requests(1))[0]
    [codex] = children(rig.h.proc.pid)
    os.killpg(codex, signal.SIGKILL)
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "codex app-server exited unexpectedly" in turn["error"]["message"]
    rig.user("second")
    after = await rig.turn()
    assert after[0]["method"] == "turn/started"  # the same thread, resumed
    assert ending(after)["status"] == "completed" and agent_texts(after) == ["resumed"]
    assert user_texts(rig.fake.model_requests()[-1]) == ["first", "second"]
    assert user_texts(first_request) == ["first"]


def children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(name))
    return found
