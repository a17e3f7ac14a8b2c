"""The shell adapter speaking the Codex notification dialect over real pipes."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from tests.harness.conftest import HarnessProcess, agent_texts, deltas, live_group_members


def test_a_turn_is_announced_streamed_and_summarised(harness: HarnessProcess) -> None:
    harness.user("echo out; echo err >&2; exit 7")
    messages = harness.turn()
    methods = [m["method"] for m in messages]
    assert methods == [
        "thread/started",
        "turn/started",
        "item/started",
        "item/commandExecution/outputDelta",
        "item/commandExecution/outputDelta",
        "item/completed",
        "item/completed",
        "turn/completed",
    ]
    thread_id = messages[0]["params"]["thread"]["id"]
    turn = messages[1]["params"]
    assert turn["threadId"] == thread_id and turn["turn"]["status"] == "inProgress"
    started = messages[2]["params"]["item"]
    assert started["type"] == "commandExecution" and started["status"] == "inProgress"
    assert started["command"] == "echo out; echo err >&2; exit 7"
    delta = messages[3]["params"]
    assert delta["itemId"] == started["id"] and delta["turnId"] == turn["turn"]["id"]
    completed = messages[5]["params"]["item"]
    assert (completed["status"], completed["exitCode"]) == ("failed", 7)
    assert completed["aggregatedOutput"] == "out\nerr\n"
    assert agent_texts(messages) == ["out\nerr\n(exit status 7)"]
    assert messages[-1]["params"] == {
        "threadId": thread_id,
        "turn": {"id": turn["turn"]["id"], "status": "completed"},
    }

    harness.user("true")
    second = harness.turn()
    assert second[0]["method"] == "turn/started"
    assert second[-3]["params"]["item"]["status"] == "completed"
    assert agent_texts(second) == [""]


def test_content_blocks_and_plain_text_lines_are_turns(
    harness: HarnessProcess, workspace: Path
) -> None:
    harness.send(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "text", "text": "echo a"},
                    {"type": "image", "url": "x"},
                    {"type": "text", "text": "b"},
                ],
            },
            "thread_key": "cli:1",
        }
    )
    assert deltas(harness.turn()) == "ab\n"
    harness.send("pwd")
    assert deltas(harness.turn()) == f"{workspace}\n"


def test_steering_writes_to_the_running_command(harness: HarnessProcess) -> None:
    harness.user("read a; read b; echo got $a $b")
    harness.until(lambda m: m["method"] == "item/started")
    harness.user("one")
    harness.user("two")
    assert deltas(harness.turn()) == "got one two\n"


def test_interrupt_kills_the_process_group(harness: HarnessProcess) -> None:
    harness.user("sleep 100 & echo $$; wait")
    messages = harness.until(lambda m: m["method"] == "item/commandExecution/outputDelta")
    group = int(messages[-1]["params"]["delta"])
    harness.send({"type": "interrupt", "reason": "stop"})
    messages = harness.turn(timeout=10)
    assert messages[-1]["params"]["turn"]["status"] == "interrupted"
    assert agent_texts(messages) == []
    assert live_group_members(group) == []


@pytest.mark.slow
def test_interrupt_escalates_to_kill_after_the_grace_period(harness: HarnessProcess) -> None:
    harness.user("trap '' TERM; echo $$; while true; do sleep 0.05; done")
    messages = harness.until(lambda m: m["method"] == "item/commandExecution/outputDelta")
    group = int(messages[-1]["params"]["delta"])
    started = time.monotonic()
    harness.send({"type": "interrupt"})
    messages = harness.turn(timeout=15)
    assert time.monotonic() - started >= 2.0
    assert messages[-1]["params"]["turn"]["status"] == "interrupted"
    assert live_group_members(group) == []


def test_interrupt_while_idle_is_a_stderr_note(harness: HarnessProcess) -> None:
    harness.send({"type": "interrupt"})
    harness.send({"type": "something-else"})
    code, stderr = harness.close()
    assert code == 0
    assert harness.lines.get(timeout=5) is None  # nothing on stdout
    assert b"interrupt ignored" in stderr and b"something-else" in stderr


def test_stdin_eof_lets_the_running_turn_finish_then_exits(harness: HarnessProcess) -> None:
    harness.user("cat; echo after")
    code, _ = harness.close()
    assert code == 0
    lines = []
    while (line := harness.lines.get(timeout=5)) is not None:
        lines.append(line)
    assert b'"delta":"after\\n"' in b"".join(lines)
    assert b'"turn/completed"' in lines[-1]


def test_many_lines_stream_fast_and_in_order(harness: HarnessProcess) -> None:
    started = time.monotonic()
    harness.user("seq 100000")
    messages = harness.turn(timeout=60)
    assert time.monotonic() - started < 10
    assert deltas(messages) == "".join(f"{i}\n" for i in range(1, 100001))


def test_a_multi_mebibyte_line_is_one_delta(harness: HarnessProcess) -> None:
    harness.user("head -c 5000000 /dev/zero | tr '\\0' x; echo; printf 'no newline'")
    messages = harness.turn(timeout=60)
    pieces = [
        m["params"]["delta"] for m in messages if m["method"] == "item/commandExecution/outputDelta"
    ]
    assert pieces == ["x" * 5_000_000 + "\n", "no newline"]
    tail = messages[-3]["params"]["item"]["aggregatedOutput"]
    assert len(tail.encode()) <= 64 * 1024 and tail.endswith("x\nno newline")


def test_output_that_is_not_utf8_is_replaced_not_fatal(harness: HarnessProcess) -> None:
    harness.user("printf 'caf\\xe9\\n'")
    assert deltas(harness.turn()) == "caf\ufffd\n"


def test_attachment_chunks_are_appended_in_the_workspace(
    harness: HarnessProcess, workspace: Path
) -> None:
    for part in (b"hello ", b"world"):
        harness.send(
            {
                "type": "attachment.chunk",
                "attachmentId": "att_1",
                "name": "../../greeting.txt",
                "mimeType": "text/plain",
                "dataBase64": base64.b64encode(part).decode(),
                "final": part == b"world",
            }
        )
    harness.send(
        {"type": "attachment.chunk", "attachmentId": "../x", "name": "a", "dataBase64": ""}
    )
    harness.send("cat .attachments/att_1/greeting.txt")
    assert deltas(harness.turn()) == "hello world"
    assert sorted(p.name for p in (workspace / ".attachments").iterdir()) == ["att_1"]
    _, stderr = harness.close()
    assert b"attachmentId must be" in stderr


def test_stdout_carries_only_protocol_lines(harness: HarnessProcess) -> None:
    harness.user("echo hi")
    harness.turn()
    code, _ = harness.close()
    assert code == 0
    assert harness.lines.get(timeout=5) is None


def test_unknown_adapter_is_a_usage_error(workspace: Path) -> None:
    process = HarnessProcess(workspace, adapter="nope")
    code, stderr = process.close()
    assert code == 2 and b"usage" in stderr


def test_readiness_is_signalled_on_the_given_fd(workspace: Path) -> None:
    import subprocess
    import sys

    from tests.harness.conftest import PACKAGE_PARENT

    read_end, write_end = os.pipe()
    env = {"PYTHONPATH": PACKAGE_PARENT, "CHIRON_HARNESS_READY_FD": str(write_end)}
    proc = subprocess.Popen(
        [sys.executable, "-s", "-S", "-m", "chiron.harness", "--adapter", "shell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        pass_fds=(write_end,),
        cwd=workspace,
        env=env,
    )
    os.close(write_end)
    try:
        assert os.read(read_end, 16) == b"1"
        assert os.read(read_end, 16) == b""  # closed right after, not inherited onwards
    finally:
        os.close(read_end)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
