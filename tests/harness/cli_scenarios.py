"""Turns both CLI adapters (`claudecode`, `codex`) handle alike, for their test modules.

Each scenario drives the real CLI through a `CliRig` and asserts what both adapters share; what
it returns lets the calling test assert what only its CLI does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from typing import Any

from tests.fake_models.base import ModelRequest, Reply
from tests.harness.conftest import (
    Message,
    agent_texts,
    children,
    command_started,
    ending,
    items,
    running,
)
from tests.harness.model_rig import CliRig


async def text_turn(rig: CliRig) -> tuple[list[Message], ModelRequest]:
    """A streamed text answer on a new thread; the turn's lines and the one model request."""
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
    assert {m["params"].get("threadId", thread_id) for m in messages} == {thread_id}

    [request] = rig.fake.model_requests()
    assert request.body["stream"] is True
    assert rig.user_texts(request) == ["What is the capital of France?"]
    return messages, request


async def command_turn(rig: CliRig, model: str) -> tuple[list[Message], ModelRequest]:
    """A command the model asks for runs in the workspace; the turn's lines and the request
    that took the command's output back."""
    rig.fake.add(
        Reply(
            reasoning="A shell command does it.",
            text="I will create the file.",
            tool_calls=(rig.shell_call("echo made > made.txt && cat made.txt"),),
        ),
        Reply(text="The file holds: made"),
    )
    rig.start(CHIRON_MODEL=model)
    rig.user("create made.txt")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert (rig.workspace / "made.txt").read_text() == "made\n"
    [command] = items(messages, "commandExecution")
    assert "echo made > made.txt" in command["command"]
    assert (command["exitCode"], command["status"]) == (0, "completed")
    assert agent_texts(messages) == ["I will create the file.", "The file holds: made"]

    first, second = rig.fake.model_requests()
    assert first.body["model"] == second.body["model"] == model
    return messages, second


async def second_turn(rig: CliRig, overrides: dict[str, str]) -> tuple[ModelRequest, ModelRequest]:
    """A second turn, with the execution's `overrides`, continues the conversation; both model
    requests."""
    rig.fake.add(Reply(text="first answer"), Reply(text="second answer"))
    rig.start()
    rig.user("first question")
    first = await rig.turn()
    rig.user("second question", execution_metadata=overrides)
    second = await rig.turn()

    assert ending(first)["status"] == ending(second)["status"] == "completed"
    assert second[0]["method"] == "turn/started"  # the thread was announced once
    assert agent_texts(second) == ["second answer"]
    before, request = rig.fake.model_requests()
    assert rig.user_texts(request) == ["first question", "second question"]
    assert "first answer" in request.text
    return before, request


async def another_provider_fails(rig: CliRig, provider: str, **session_context: Any) -> None:
    """A turn whose `session_context` asks for `provider` fails without calling a model."""
    rig.start()
    rig.user("hello", **session_context)
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert f"provider {provider!r}" in turn["error"]["message"]
    assert rig.fake.model_requests() == []


async def a_new_process_resumes(rig: CliRig) -> None:
    """A new harness process given the thread id continues the conversation where it was."""
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
    assert rig.user_texts(request) == ["remember 42", "what was it?"]
    assert "noted: 42" in request.text


async def a_transcript_seeds_a_new_thread(rig: CliRig, gone: str) -> None:
    """A thread id the CLI no longer knows (`gone`): a new thread gets the transcript first."""
    rig.fake.add(Reply(text="it was 42"))
    rig.start()
    transcript = [
        {"role": "user", "text": "remember 42"},
        {"role": "assistant", "text": "noted: 42"},
    ]
    rig.user("what was it?", harness_thread_id=gone, transcript=transcript)
    messages = await rig.turn()

    new_thread = messages[0]["params"]["thread"]["id"]
    assert messages[0]["method"] == "thread/started" and new_thread != gone
    assert ending(messages)["status"] == "completed"
    [request] = rig.fake.model_requests()
    [text] = rig.user_texts(request)
    assert text.startswith("Conversation so far")
    assert text.index("User: remember 42") < text.index("Assistant: noted: 42")
    assert text.endswith("what was it?")


async def steer_during_a_command(rig: CliRig) -> tuple[ModelRequest, ModelRequest]:
    """Steering sent while a command runs is answered in the same turn; both model requests."""
    rig.fake.add(
        Reply(tool_calls=(rig.shell_call("sleep 1.5; echo slept"),)),
        Reply(text="steered"),
    )
    rig.start()
    rig.user("start something slow")
    await rig.until(command_started)
    rig.user("also mention the weather")
    messages = await rig.turn()

    assert ending(messages)["status"] == "completed"
    assert agent_texts(messages)[-1] == "steered"
    first, second = rig.fake.model_requests()
    return first, second


async def interrupt_now(rig: CliRig) -> list[Message]:
    """Interrupt the running turn; it must end `interrupted` within 3 s. The turn's lines."""
    started = time.monotonic()
    rig.h.send({"type": "interrupt", "reason": "user"})
    messages = await rig.turn(timeout=10)
    assert ending(messages)["status"] == "interrupted"
    assert time.monotonic() - started < 3
    return messages


async def an_interrupt_ends_a_hanging_request(rig: CliRig) -> None:
    """An interrupt ends a turn whose model request never gets an answer; the next turn works."""
    rig.fake.add(Reply(hang=True), Reply(text="back again"))
    rig.start()
    rig.user("hang please")
    await rig.requests(1)
    await interrupt_now(rig)
    rig.user("are you there?")
    after = await rig.turn()
    assert ending(after)["status"] == "completed"
    assert agent_texts(after) == ["back again"]


async def interrupt_a_running_command(rig: CliRig) -> list[Message]:
    """An interrupt ends the turn and the command it runs; the turn's lines."""
    # Unique per call: parallel tests must not find each other's command.
    marker = f"import time; time.sleep(31.{secrets.randbelow(10**6):06d})"
    rig.fake.add(Reply(tool_calls=(rig.shell_call(f"python3 -c '{marker}'"),)))
    rig.start()
    rig.user("run it")
    await rig.until(command_started)
    deadline = time.monotonic() + 5
    while not running(marker):
        assert time.monotonic() < deadline, "the command never started"
        await asyncio.sleep(0.05)
    messages = await interrupt_now(rig)
    deadline = time.monotonic() + 3
    while running(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not running(marker)
    return messages


async def failed_turn(rig: CliRig, reply: Reply) -> tuple[Message, list[Message]]:
    """Every model request answered with `reply`: the turn fails within 15 s; its terminal
    turn and its lines."""
    rig.fake.default = reply
    rig.start()
    started = time.monotonic()
    rig.user("hello")
    messages = await rig.turn()

    turn = ending(messages)
    assert turn["status"] == "failed"
    assert time.monotonic() - started < 15
    return turn, messages


async def kill_the_cli_mid_turn(rig: CliRig, then: str) -> Message:
    """SIGKILL the CLI (the harness's only child) during a turn: that turn fails, and the next
    one (`then`) restarts it on the same thread and gets the answer `resumed`. The failed turn."""
    [cli] = children(rig.h.proc.pid)
    os.killpg(cli, signal.SIGKILL)
    turn = ending(await rig.turn())
    assert turn["status"] == "failed"

    rig.user(then)
    after = await rig.turn()
    assert after[0]["method"] == "turn/started"  # the same thread, resumed
    assert ending(after)["status"] == "completed" and agent_texts(after) == ["resumed"]
    return turn
