"""The `claudecode` harness end to end: the real `claude` CLI against a loopback Messages API.

The harness process runs as in a sandbox (minus the sandbox): private HOME, the CLI from
`CHIRON_CLI_BIN`, placeholder keys, plain-HTTP base URLs on loopback.
Set CHIRON_RECORD_HARNESS_STREAMS=1 to rewrite tests/fixtures/harness_streams/claudecode.jsonl
from the text+command turn.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fake_models.anthropic_messages import AnthropicMessagesServer
from tests.fake_models.base import ModelRequest, Reply, ToolCall
from tests.fixtures.harness_streams import record_stream, recording
from tests.harness import cli_scenarios as scenario
from tests.harness.conftest import Message, agent_texts, ending, items
from tests.harness.model_rig import CliRig, require_cli, serving

pytestmark = pytest.mark.slow

require_cli("claude")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[CliRig]:
    fake = AnthropicMessagesServer()
    async with serving(
        fake, lambda: CliRig("claudecode", fake, tmp_path, shell_call=bash, user_texts=user_texts)
    ) as setup:
        yield setup


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command})


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


async def test_a_text_turn_answers_through_the_messages_api(rig: CliRig) -> None:
    messages, request = await scenario.text_turn(rig)

    assert agent_texts(messages) == ["Paris is the capital."]
    [started] = items(messages, "agentMessage", "item/started")
    assert started["id"] == items(messages, "agentMessage")[0]["id"]
    assert request.header("x-api-key") == "ANTHROPIC_API_KEY"
    assert "Answer in one sentence." in system_text(request)
    await rig.no_more_lines()


async def test_a_command_turn_runs_in_the_workspace_and_sends_the_output_back(
    rig: CliRig,
) -> None:
    messages, second = await scenario.command_turn(rig, "claude-fake-model")

    [command] = items(messages, "commandExecution")
    assert command["command"] == "echo made > made.txt && cat made.txt"
    assert command["aggregatedOutput"] == "made"
    [reasoning] = items(messages, "reasoning")
    assert reasoning["content"] == ["A shell command does it."]
    thinking = [m["params"]["delta"] for m in messages if m["method"] == "item/reasoning/textDelta"]
    assert "".join(thinking) == "A shell command does it."
    assert tool_results(second) == ["made"]
    if recording():
        record_stream("claudecode", messages, rig.workspace)


async def test_file_tools_failing_commands_and_thinking_become_items(rig: CliRig) -> None:
    target = rig.workspace / "notes.txt"
    rig.fake.add(
        Reply(tool_calls=(ToolCall("Write", {"file_path": str(target), "content": "a\nb\n"}),)),
        Reply(
            tool_calls=(
                ToolCall("Edit", {"file_path": str(target), "old_string": "b", "new_string": "B"}),
            )
        ),
        Reply(tool_calls=(bash("echo broken >&2; exit 3"),)),
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


async def test_a_second_turn_continues_the_conversation(rig: CliRig) -> None:
    # Another model: claude starts again, resuming the session.
    before, request = await scenario.second_turn(rig, {"model": "claude-other"})

    assert before.body["model"] != "claude-other" and request.body["model"] == "claude-other"


async def test_a_turn_for_another_provider_fails_without_calling_a_model(rig: CliRig) -> None:
    await scenario.another_provider_fails(
        rig, "openai", execution_metadata={"provider": "openai", "model": "gpt-x"}
    )


async def test_a_new_harness_process_resumes_the_session(rig: CliRig) -> None:
    await scenario.a_new_process_resumes(rig)


async def test_without_the_session_state_the_transcript_seeds_a_new_session(rig: CliRig) -> None:
    await scenario.a_transcript_seeds_a_new_thread(rig, "6b0d1f3e-1111-4222-8333-944455556666")


async def test_steering_reaches_the_model_within_the_turn(rig: CliRig) -> None:
    first, second = await scenario.steer_during_a_command(rig)

    assert "also mention the weather" not in first.text
    assert "also mention the weather" in second.text
    await rig.no_more_lines()


async def test_steering_claude_queues_runs_before_the_turn_ends(rig: CliRig) -> None:
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


async def test_an_interrupt_ends_a_hanging_model_request(rig: CliRig) -> None:
    await scenario.an_interrupt_ends_a_hanging_request(rig)


async def test_an_interrupt_kills_the_running_command(rig: CliRig) -> None:
    messages = await scenario.interrupt_a_running_command(rig)

    [command] = items(messages, "commandExecution")
    assert command["status"] == "failed"


async def test_a_401_fails_the_turn_with_a_readable_error(rig: CliRig) -> None:
    turn, messages = await scenario.failed_turn(rig, Reply(status=401, error_message="invalid key"))

    assert "401" in turn["error"]["message"] and "invalid key" in turn["error"]["message"]
    assert agent_texts(messages) == []
    await rig.no_more_lines()


async def test_a_persistent_500_fails_the_turn_after_the_retries(rig: CliRig) -> None:
    turn, messages = await scenario.failed_turn(rig, Reply(status=500, error_message="boom"))

    assert "500" in turn["error"]["message"] and "boom" in turn["error"]["message"]
    assert len(rig.fake.model_requests()) == 2  # CHIRON_MODEL_MAX_RETRIES=1
    [retry] = [m for m in messages if m["method"] == "error"]
    assert retry["params"]["willRetry"] is True and "500" in retry["params"]["error"]["message"]


async def test_a_dead_claude_fails_the_turn_and_the_next_turn_resumes(rig: CliRig) -> None:
    rig.fake.add(Reply(text="noted"), Reply(hang=True), Reply(text="resumed"))
    rig.start()
    rig.user("first")
    await rig.turn()
    rig.user("second")
    await rig.requests(2)
    turn = await scenario.kill_the_cli_mid_turn(rig, then="third")

    assert "claude exited unexpectedly" in turn["error"]["message"]
    assert user_texts(rig.fake.model_requests()[-1])[:1] == ["first"]
    assert user_texts(rig.fake.model_requests()[-1])[-1] == "third"
