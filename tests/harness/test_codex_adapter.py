"""The `codex` harness end to end: the real `codex app-server` against a loopback Responses API.

The harness process runs as in a sandbox (minus the sandbox): private HOME, the CLI from
`CHIRON_CLI_BIN`, placeholder keys, plain-HTTP base URLs on loopback.
Set CHIRON_RECORD_HARNESS_STREAMS=1 to rewrite tests/fixtures/harness_streams/codex.jsonl from
the text+command turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fake_models.base import ModelRequest, Reply, ToolCall
from tests.fake_models.responses import ResponsesServer, function_call_outputs, input_texts
from tests.fixtures.harness_streams import record_stream, recording
from tests.harness import cli_scenarios as scenario
from tests.harness.conftest import agent_texts, ending, items
from tests.harness.model_rig import CliRig, require_cli, serving

pytestmark = pytest.mark.slow

require_cli("codex")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[CliRig]:
    fake = ResponsesServer()
    async with serving(
        fake,
        lambda: CliRig("codex", fake, tmp_path, shell_call=exec_command, user_texts=user_texts),
    ) as setup:
        yield setup


def exec_command(cmd: str) -> ToolCall:
    return ToolCall("exec_command", {"cmd": cmd})


def user_texts(request: ModelRequest) -> list[str]:
    # The first user message is codex's own environment context.
    return [t for t in input_texts(request, "user") if not t.startswith("<environment_context>")]


# -- turns --------------------------------------------------------------------------------


async def test_a_text_turn_answers_through_the_responses_api(rig: CliRig) -> None:
    messages, request = await scenario.text_turn(rig)

    turn_id = messages[1]["params"]["turn"]["id"]
    assert {m["params"]["turnId"] for m in messages if "turnId" in m["params"]} == {turn_id}
    assert request.header("authorization") == "Bearer OPENAI_API_KEY"
    assert request.body["model"] == "gpt-5-codex"
    assert "Answer in one sentence." in input_texts(request, "developer")
    assert "web_search" not in {t.get("type") for t in request.body["tools"]}
    await rig.no_more_lines()


async def test_a_command_turn_runs_in_the_workspace_and_sends_the_output_back(
    rig: CliRig,
) -> None:
    messages, second = await scenario.command_turn(rig, "fake-codex-model")

    [command] = items(messages, "commandExecution")
    assert command["aggregatedOutput"] == "made\n"
    assert command["cwd"] == str(rig.workspace)
    [reasoning] = items(messages, "reasoning")
    assert reasoning["summary"] == ["A shell command does it."]
    [output] = function_call_outputs(second)
    assert output["call_id"] == "call_0_0" and "made" in output["output"]
    if recording():
        record_stream("codex", messages, rig.workspace)


async def test_a_second_turn_continues_the_conversation(rig: CliRig) -> None:
    overrides = {"model": "other-model", "reasoning_effort": "high"}
    before, request = await scenario.second_turn(rig, overrides)

    assert (before.body["model"], request.body["model"]) == ("gpt-5-codex", "other-model")
    assert request.body["reasoning"]["effort"] == "high"


async def test_a_turn_for_another_provider_fails_without_calling_a_model(rig: CliRig) -> None:
    await scenario.another_provider_fails(
        rig, "anthropic", metadata={"provider": "anthropic", "model": "claude-x"}
    )


async def test_a_new_harness_process_resumes_the_thread(rig: CliRig) -> None:
    await scenario.a_new_process_resumes(rig)


async def test_without_the_thread_state_the_transcript_seeds_a_new_thread(rig: CliRig) -> None:
    await scenario.a_transcript_seeds_a_new_thread(rig, "01a21976-0000-7000-8000-000000000000")


async def test_steering_reaches_the_model_within_the_turn(rig: CliRig) -> None:
    first, second = await scenario.steer_during_a_command(rig)

    assert user_texts(first) == ["start something slow"]
    assert user_texts(second) == ["start something slow", "also mention the weather"]
    await rig.no_more_lines()


async def test_steering_while_the_answer_streams_reaches_the_model_in_the_same_turn(
    rig: CliRig,
) -> None:
    # The answer stalls half-way until the steering line is in: whether codex takes it into
    # its running turn or refuses it because its turn just ended (then the harness runs it as
    # a follow-up codex turn), it must be answered before the harness turn's one terminal line.
    steered = asyncio.Event()
    rig.fake.add(
        Reply(text="first answer", chunks=4, hang_after=6, resume=steered),
        Reply(text="answer to the steering"),
    )
    rig.start()
    rig.user("question")
    await rig.until(lambda m: m["method"] == "item/agentMessage/delta")
    rig.user("one more thing")
    await asyncio.sleep(0.3)
    steered.set()
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "answer to the steering"
    last = rig.fake.model_requests()[-1]
    assert user_texts(last)[-1] == "one more thing"
    await rig.no_more_lines()


async def test_an_interrupt_ends_a_hanging_model_request(rig: CliRig) -> None:
    await scenario.an_interrupt_ends_a_hanging_request(rig)


async def test_an_interrupt_kills_the_running_command(rig: CliRig) -> None:
    await scenario.interrupt_a_running_command(rig)


async def test_a_401_fails_the_turn_with_a_readable_error(rig: CliRig) -> None:
    turn, _ = await scenario.failed_turn(rig, Reply(status=401, error_message="invalid key"))

    assert "401" in turn["error"]["message"] and "invalid key" in turn["error"]["message"]
    await rig.no_more_lines()


async def test_a_persistent_500_fails_the_turn_after_the_retries(rig: CliRig) -> None:
    turn, messages = await scenario.failed_turn(rig, Reply(status=500, error_message="boom"))

    assert "server error" in turn["error"]["message"]
    # CHIRON_MODEL_MAX_RETRIES=1: codex's request and stream retries, each attempted twice.
    assert 2 <= len(rig.fake.model_requests()) <= 4
    assert [m["params"]["willRetry"] for m in messages if m["method"] == "error"] == [True]


async def test_a_silent_model_server_fails_the_turn_after_the_timeout(rig: CliRig) -> None:
    rig.fake.default = Reply(hang=True)
    rig.start(CHIRON_MODEL_TIMEOUT_S="1", CHIRON_MODEL_MAX_RETRIES="0")
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn(timeout=15)

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert "gave no answer for 1 s" in turn["error"]["message"]
    assert time.monotonic() - started < 8


async def test_a_dead_app_server_fails_the_turn_and_the_next_turn_restarts_it(rig: CliRig) -> None:
    rig.fake.add(Reply(hang=True), Reply(text="resumed"))
    rig.start()
    rig.user("first")
    first_request = (await rig.requests(1))[0]
    turn = await scenario.kill_the_cli_mid_turn(rig, then="second")

    assert "codex app-server exited unexpectedly" in turn["error"]["message"]
    assert user_texts(rig.fake.model_requests()[-1]) == ["first", "second"]
    assert user_texts(first_request) == ["first"]
