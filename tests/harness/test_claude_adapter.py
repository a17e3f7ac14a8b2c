"""The `claudecode` harness end to end: the real `claude` CLI against a loopback Messages API.

The harness process runs as in a sandbox (minus the sandbox): private HOME, the CLI from
`CHIRON_CLI_BIN`, placeholder keys, plain-HTTP base URLs on loopback.
Set CHIRON_RECORD_HARNESS_STREAMS=1 to rewrite tests/fixtures/harness_streams/claudecode.jsonl
from the text+command turn.
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

from tests.fake_models.anthropic_messages import AnthropicMessagesServer
from tests.fake_models.base import ModelRequest, Reply, ToolCall
from tests.fixtures.harness_streams import record_stream, recording
from tests.harness.conftest import HarnessProcess, agent_texts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLI_BIN = REPO / "harness-clis" / "node_modules" / ".bin"
Message = dict[str, Any]

if not (CLI_BIN / "claude").exists():
    pytest.skip(
        "the claude CLI is not installed (npm ci --prefix harness-clis)", allow_module_level=True
    )


class Rig:
    """A fake Messages API plus the claudecode harness process using it."""

    def __init__(self, fake: AnthropicMessagesServer, root: Path) -> None:
        self.fake = fake
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
        self.harness = HarnessProcess(self.workspace, "claudecode", self.env)
        return self.harness

    def stop(self) -> None:
        if self.harness is not None:
            if self.harness.proc.poll() is None:
                self.harness.proc.kill()
            self.harness.close()
            self.harness = None

    def restart(self) -> HarnessProcess:
        assert self.harness is not None
        code, stderr = self.harness.close()
        assert code == 0, stderr
        return self.start()

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
    fake = AnthropicMessagesServer()
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


def items(messages: list[Message], kind: str, method: str = "item/completed") -> list[Message]:
    return [
        m["params"]["item"]
        for m in messages
        if m["method"] == method and m["params"]["item"]["type"] == kind
    ]


def blocks(request: ModelRequest, role: str) -> list[Message]:
    found = []
    for message in request.body["messages"]:
        if message["role"] != role:
            continue
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        found.extend(content)
    return found


def user_texts(request: ModelRequest) -> list[str]:
    """The user's words, without the reminders claude adds to user messages."""
    return [
        b["text"]
        for b in blocks(request, "user")
        if b["type"] == "text" and not b["text"].startswith("<system-reminder>")
    ]


def tool_results(request: ModelRequest) -> list[str]:
    results = []
    for block in blocks(request, "user"):
        if block["type"] == "tool_result":
            content = block["content"]
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content)
            results.append(content)
    return results


def system_text(request: ModelRequest) -> str:
    system = request.body.get("system", "")
    if isinstance(system, list):
        return "\n".join(part["text"] for part in system)
    return str(system)


# -- turns --------------------------------------------------------------------------------


async def test_a_text_turn_answers_through_the_messages_api(rig: Rig) -> None:
    rig.fake.add(Reply(text="Paris is the capital.", chunks=4))
    rig.start()
    rig.user("What is the capital of France?", system_prompt="Answer in one sentence.")
    messages = await rig.turn()

    assert [m["method"] for m in messages[:2]] == ["thread/started", "turn/started"]
    thread_id = messages[0]["params"]["thread"]["id"]
    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages) == ["Paris is the capital."]
    deltas = [m["params"]["delta"] for m in messages if m["method"] == "item/agentMessage/delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Paris is the capital."
    [started] = items(messages, "agentMessage", "item/started")
    assert started["id"] == items(messages, "agentMessage")[0]["id"]
    assert {m["params"].get("threadId", thread_id) for m in messages} == {thread_id}

    [request] = rig.fake.model_requests()
    assert request.header("x-api-key") == "ANTHROPIC_API_KEY"
    assert request.body["stream"] is True
    assert user_texts(request) == ["What is the capital of France?"]
    assert "Answer in one sentence." in system_text(request)
    await rig.no_more_lines()


async def test_a_command_turn_runs_in_the_workspace_and_sends_the_output_back(rig: Rig) -> None:
    rig.fake.add(
        Reply(
            reasoning="A shell command does it.",
            text="I will create the file.",
            tool_calls=(ToolCall("Bash", {"command": "echo made > made.txt && cat made.txt"}),),
        ),
        Reply(text="The file holds: made"),
    )
    rig.start(CHIRON_MODEL="claude-fake-model")
    rig.user("create made.txt")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert (rig.workspace / "made.txt").read_text() == "made\n"
    [command] = items(messages, "commandExecution")
    assert command["command"] == "echo made > made.txt && cat made.txt"
    assert (command["exitCode"], command["status"]) == (0, "completed")
    assert command["aggregatedOutput"] == "made"
    assert agent_texts(messages) == ["I will create the file.", "The file holds: made"]
    [reasoning] = items(messages, "reasoning")
    assert reasoning["content"] == ["A shell command does it."]
    thinking = [m["params"]["delta"] for m in messages if m["method"] == "item/reasoning/textDelta"]
    assert "".join(thinking) == "A shell command does it."

    first, second = rig.fake.model_requests()
    assert first.body["model"] == second.body["model"] == "claude-fake-model"
    assert tool_results(second) == ["made"]
    if recording():
        record_stream("claudecode", messages, rig.workspace)


async def test_file_tools_failing_commands_and_thinking_become_items(rig: Rig) -> None:
    target = rig.workspace / "notes.txt"
    rig.fake.add(
        Reply(tool_calls=(ToolCall("Write", {"file_path": str(target), "content": "a\nb\n"}),)),
        Reply(
            tool_calls=(
                ToolCall("Edit", {"file_path": str(target), "old_string": "b", "new_string": "B"}),
            )
        ),
        Reply(tool_calls=(ToolCall("Bash", {"command": "echo broken >&2; exit 3"}),)),
        Reply(tool_calls=(ToolCall("Read", {"file_path": str(target)}),)),
        Reply(reasoning="All done, I think.", text="Done."),
    )
    rig.start()
    rig.user("edit notes")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert target.read_text() == "a\nB\n"
    write, edit = items(messages, "fileChange")
    assert write["status"] == edit["status"] == "completed"
    assert write["changes"] == [{"path": str(target), "kind": {"type": "add"}, "diff": "+a\n+b\n"}]
    [change] = edit["changes"]
    assert change["kind"] == {"type": "update"} and "-b\n+B" in change["diff"]
    [command] = items(messages, "commandExecution")
    assert (command["exitCode"], command["status"]) == (3, "failed")
    assert "broken" in command["aggregatedOutput"]
    [read] = items(messages, "mcpToolCall")
    assert (read["server"], read["tool"], read["status"]) == ("claude", "Read", "completed")
    assert read["arguments"] == {"file_path": str(target)} and "B" in read["result"]
    [thinking] = items(messages, "reasoning")
    assert thinking["content"] == ["All done, I think."]
    assert agent_texts(messages) == ["Done."]


async def test_a_second_turn_continues_the_conversation(rig: Rig) -> None:
    rig.fake.add(Reply(text="first answer"), Reply(text="second answer"))
    rig.start()
    rig.user("first question")
    first = await rig.turn()
    # Another model: claude starts again, resuming the session.
    rig.user("second question", execution_metadata={"model": "claude-other"})
    second = await rig.turn()

    assert ending(first)["status"] == ending(second)["status"] == "completed"
    assert second[0]["method"] == "turn/started"  # the thread was announced once
    assert agent_texts(second) == ["second answer"]
    before, request = rig.fake.model_requests()
    assert user_texts(request) == ["first question", "second question"]
    assert "first answer" in request.text
    assert before.body["model"] != "claude-other" and request.body["model"] == "claude-other"


async def test_a_turn_for_another_provider_fails_without_calling_a_model(rig: Rig) -> None:
    rig.start()
    rig.user("hello", execution_metadata={"provider": "openai", "model": "gpt-x"})
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "provider 'openai'" in turn["error"]["message"]
    assert rig.fake.model_requests() == []


async def test_a_new_harness_process_resumes_the_session(rig: Rig) -> None:
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


async def test_without_the_session_state_the_transcript_seeds_a_new_session(rig: Rig) -> None:
    rig.fake.add(Reply(text="it was 42"))
    rig.start()
    transcript = [
        {"role": "user", "text": "remember 42"},
        {"role": "assistant", "text": "noted: 42"},
    ]
    gone = "6b0d1f3e-1111-4222-8333-944455556666"
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
        Reply(tool_calls=(ToolCall("Bash", {"command": "sleep 1.5; echo slept"}),)),
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
    assert "also mention the weather" not in first.text
    assert "also mention the weather" in second.text
    await rig.no_more_lines()


async def test_steering_claude_queues_runs_before_the_turn_ends(rig: Rig) -> None:
    def steer_while_answering(request: ModelRequest) -> Reply:
        # Sent while this request is in flight and no tool runs: claude queues it as a turn
        # of its own after this one; the harness turn must last until that one answered.
        rig.user("one more thing")
        time.sleep(0.8)
        return Reply(text="first")

    rig.fake.add(steer_while_answering, Reply(text="answer to the steering"))
    rig.start()
    rig.user("question")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages) == ["first", "answer to the steering"]
    assert user_texts(rig.fake.model_requests()[-1])[-1] == "one more thing"
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
    rig.fake.add(Reply(tool_calls=(ToolCall("Bash", {"command": f"python3 -c '{marker}'"}),)))
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
    [command] = items(messages, "commandExecution")
    assert command["status"] == "failed"
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
    assert agent_texts(messages) == []
    await rig.no_more_lines()


async def test_a_persistent_500_fails_the_turn_after_the_retries(rig: Rig) -> None:
    rig.fake.default = Reply(status=500, error_message="boom")
    rig.start()
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "500" in turn["error"]["message"] and "boom" in turn["error"]["message"]
    assert time.monotonic() - started < 15
    assert len(rig.fake.model_requests()) == 2  # CHIRON_MODEL_MAX_RETRIES=1
    [retry] = [m for m in messages if m["method"] == "error"]
    assert retry["params"]["willRetry"] is True and "500" in retry["params"]["error"]["message"]


async def test_a_dead_claude_fails_the_turn_and_the_next_turn_resumes(rig: Rig) -> None:
    rig.fake.add(Reply(text="noted"), Reply(hang=True), Reply(text="resumed"))
    rig.start()
    rig.user("first")
    await rig.turn()
    rig.user("second")
    await rig.requests(2)
    [claude] = children(rig.h.proc.pid)
    os.killpg(claude, signal.SIGKILL)
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "claude exited unexpectedly" in turn["error"]["message"]
    rig.user("third")
    after = await rig.turn()
    assert after[0]["method"] == "turn/started"  # the same session, resumed
    assert ending(after)["status"] == "completed" and agent_texts(after) == ["resumed"]
    assert user_texts(rig.fake.model_requests()[-1])[:1] == ["first"]
    assert user_texts(rig.fake.model_requests()[-1])[-1] == "third"


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
