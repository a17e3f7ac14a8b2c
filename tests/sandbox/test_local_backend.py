"""The local backend end to end with real bwrap sandboxes and the shell harness."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import chiron
from chiron.sandbox import host_processes
from chiron.sandbox.backend import (
    InputReceipt,
    SandboxError,
    SandboxLost,
    SandboxSpec,
    SandboxState,
    SandboxUnavailable,
)
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.sandbox.conftest import (
    LIMITS,
    Reader,
    SandboxFactory,
    agent_text,
    deltas,
    new_sandbox_id,
    run_turn,
    sandbox_spec_on_disk,
    turn_status,
    user_line,
)


async def test_create_list_stop(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox(labels={"session": "cli:1"})
    assert await backend.status(sandbox_id) is SandboxState.RUNNING
    infos = await backend.list()
    assert [(i.sandbox_id, i.state, i.labels) for i in infos] == [
        (sandbox_id, SandboxState.RUNNING, {"session": "cli:1"})
    ]
    directory = settings.sandboxes_dir / sandbox_id
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "supervisor.sock").stat().st_mode & 0o777 == 0o600
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    assert (directory / "workspace").stat().st_uid == uid

    await backend.stop(sandbox_id)
    assert not directory.exists()
    assert await backend.status(sandbox_id) is SandboxState.STOPPED
    assert await backend.list() == []
    await backend.stop(sandbox_id)


async def test_a_turn_streams_codex_notifications(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)

    first = await run_turn(backend, reader, "echo hello; echo oops >&2; exit 3")
    methods = [m["method"] for m in first]
    assert methods[:3] == ["thread/started", "turn/started", "item/started"]
    assert methods[-3:] == ["item/completed", "item/completed", "turn/completed"]
    assert all("jsonrpc" not in m for m in first)
    assert deltas(first) == "hello\noops\n"
    command = first[-3]["params"]["item"]
    assert command["type"] == "commandExecution"
    assert (command["status"], command["exitCode"]) == ("failed", 3)
    assert command["aggregatedOutput"] == "hello\noops\n"
    assert agent_text(first) == "hello\noops\n(exit status 3)"
    assert turn_status(first) == "completed"

    second = await run_turn(backend, reader, "pwd; echo $HOME")
    assert "thread/started" not in [m["method"] for m in second]
    assert deltas(second) == "/workspace\n/home/agent\n"
    assert agent_text(second) == "/workspace\n/home/agent\n"


async def test_steering_reaches_the_running_command(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)
    await backend.write_input(sandbox_id, [user_line("read x; echo got $x")], token="t1")
    await reader.until(lambda m: m.get("method") == "item/started")
    await backend.write_input(sandbox_id, [user_line("steer me")], token="t2")
    messages = await reader.turn()
    assert deltas(messages) == "got steer me\n"
    assert turn_status(messages) == "completed"


async def test_interrupt_ends_the_turn_and_its_process_group(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)
    command = "echo $$ > pgid; sleep 100 & sleep 200 & echo started; wait"
    await backend.write_input(sandbox_id, [user_line(command)], token="t1")
    await reader.until(lambda m: m.get("params", {}).get("delta") == "started\n")
    interrupt = json.dumps({"type": "interrupt", "reason": "test"})
    await backend.write_input(sandbox_id, [interrupt], token="t2")
    messages = await reader.turn(timeout=10)
    assert turn_status(messages) == "interrupted"
    assert agent_text(messages) is None

    check = await run_turn(
        backend, reader, 'kill -0 -"$(cat pgid)" 2>/dev/null && echo alive || echo gone'
    )
    assert deltas(check) == "gone\n"


async def test_an_oversized_line_is_capped_with_its_real_length(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    cap = 256 * 1024  # above the 64 KiB output tails of item/completed
    reader = Reader(backend, sandbox_id, line_cap=cap)
    await backend.write_input(
        sandbox_id, [user_line("head -c 2097152 /dev/zero | tr '\\0' a; echo")], token="t"
    )
    await reader.turn()
    big = [line for line in reader.raw if line.original_bytes is not None]
    assert len(big) == 1
    assert len(big[0].data) == cap
    assert big[0].original_bytes is not None and big[0].original_bytes > 2 * 1024 * 1024
    assert big[0].data.startswith(b'{"method":"item/commandExecution/outputDelta"')
    offsets = [line.end_offset for line in reader.raw]
    assert offsets == sorted(offsets)
    assert offsets[-1] == await backend.output_end(sandbox_id)


async def test_ten_thousand_lines_arrive_in_order(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    messages = await run_turn(backend, Reader(backend, sandbox_id), "seq 10000")
    assert deltas(messages) == "".join(f"{i}\n" for i in range(1, 10001))


async def test_write_input_delivers_once_per_token(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    assert await backend.input_delivered(sandbox_id, "tok-1") is None
    receipt = await backend.write_input(sandbox_id, [user_line("echo once")], token="tok-1")
    again = await backend.write_input(sandbox_id, [user_line("echo once")], token="tok-1")
    assert receipt.written and not again.written
    assert again.offset == receipt.offset
    assert await backend.input_delivered(sandbox_id, "tok-1") == receipt.offset
    assert await backend.input_delivered(sandbox_id, "tok-2") is None

    reader = Reader(backend, sandbox_id)
    first = await reader.turn()
    second = await run_turn(backend, reader, "echo marker")
    assert deltas(first) == "once\n"
    assert deltas(second) == "marker\n"
    with pytest.raises(SandboxError):
        await backend.write_input(sandbox_id, ["two\nlines"], token="tok-3")


async def test_open_output_replays_exactly_the_bytes_after_an_offset(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)
    await run_turn(backend, reader, "seq 5")
    middle = reader.raw[len(reader.raw) // 2]
    log = (settings.sandboxes_dir / sandbox_id / "output.log").read_bytes()

    replay = Reader(backend, sandbox_id, offset=middle.end_offset)
    await replay.turn()
    assert b"".join(line.data + b"\n" for line in replay.raw) == log[middle.end_offset :]
    assert [line.end_offset for line in replay.raw] == [
        line.end_offset for line in reader.raw if line.end_offset > middle.end_offset
    ]


async def test_killing_the_supervisor_mid_stream_loses_the_sandbox(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)
    await backend.write_input(
        sandbox_id, [user_line("while true; do echo tick; sleep 0.02; done")], token="t"
    )
    await reader.until(lambda m: m.get("params", {}).get("delta") == "tick\n")
    pid = int((settings.sandboxes_dir / sandbox_id / "supervisor.pid").read_text())
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(SandboxLost):
        await reader.until(lambda m: False, timeout=10)
    assert await backend.status(sandbox_id) is SandboxState.GONE
    # The kernel took the sandbox down with its supervisor.
    assert host_processes.wait_gone(host_processes.pids_of_uid(uid), 5.0)
    await backend.stop(sandbox_id)
    assert await backend.status(sandbox_id) is SandboxState.STOPPED


async def test_killing_the_harness_makes_the_sandbox_gone(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    harness = [
        pid
        for pid in host_processes.pids_of_uid(uid)
        if b"chiron.harness" in host_processes.cmdline(pid)
    ]
    assert len(harness) == 1
    os.kill(harness[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while await backend.status(sandbox_id) is not SandboxState.GONE:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    with pytest.raises(SandboxLost):
        await backend.write_input(sandbox_id, [user_line("echo late")], token="late")
    # The output ended in order: reading it finishes instead of raising.
    assert [lines async for lines in backend.open_output(sandbox_id, 0, line_cap=1024)] == []


async def test_pause_freezes_the_whole_sandbox_until_resume(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    reader = Reader(backend, sandbox_id)
    counter = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.01; done"
    await backend.write_input(sandbox_id, [user_line(counter)], token="t")
    await reader.until(lambda m: m.get("params", {}).get("delta") == "3\n")

    await backend.pause(sandbox_id)
    assert await backend.status(sandbox_id) is SandboxState.SUSPENDED
    frozen = await backend.output_end(sandbox_id)
    await asyncio.sleep(0.4)
    assert await backend.output_end(sandbox_id) == frozen

    await backend.resume(sandbox_id)
    assert await backend.status(sandbox_id) is SandboxState.RUNNING
    deadline = time.monotonic() + 5
    while await backend.output_end(sandbox_id) == frozen:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_pause_catches_processes_forked_during_the_freeze(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    reader = Reader(backend, sandbox_id)
    forker = "while true; do (sh -c 'echo x' &); done"
    await backend.write_input(sandbox_id, [user_line(forker)], token="t")
    await reader.until(lambda m: m.get("params", {}).get("delta") == "x\n")

    await backend.pause(sandbox_id)
    pids = host_processes.pids_of_uid(uid)
    states = {pid: _state(pid) for pid in pids}
    assert pids and set(states.values()) <= {"T", "Z", "X"}, states
    await backend.resume(sandbox_id)
    assert _state(pids[0]) in {"S", "R", "Z", "X", "D"}


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


@pytest.mark.slow
async def test_a_sandbox_whose_directory_vanished_ends_itself(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    directory = settings.sandboxes_dir / sandbox_id
    supervisor_pid = int((directory / "supervisor.pid").read_text())
    await asyncio.to_thread(shutil.rmtree, directory)
    gone = await asyncio.to_thread(host_processes.wait_gone, [supervisor_pid], 10.0)
    assert gone
    assert host_processes.wait_gone(host_processes.pids_of_uid(uid), 5.0)


async def test_spec_files_land_in_workspace_and_home(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    files = {"notes/a.txt": b"alpha", "/home/agent/.config/tool.toml": b"beta"}
    sandbox_id = await make_sandbox(files=files)
    messages = await run_turn(
        backend,
        Reader(backend, sandbox_id),
        "cat notes/a.txt; echo; cat ~/.config/tool.toml; echo; stat -c %U notes/a.txt; umask",
    )
    assert deltas(messages) == "alpha\nbeta\nagent\n0022\n"

    for bad in ("../escape", "/etc/passwd"):
        with pytest.raises(SandboxError):
            await make_sandbox(files={bad: b"x"})
    assert [i.sandbox_id for i in await backend.list()] == [sandbox_id]


async def test_env_reaches_the_harness_but_host_env_does_not(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHIRON_TEST_HOST_ONLY", "host-value")
    sandbox_id = await make_sandbox(env={"GITHUB_TOKEN": "GITHUB_TOKEN"})
    messages = await run_turn(
        backend, Reader(backend, sandbox_id), 'echo "$GITHUB_TOKEN|$CHIRON_TEST_HOST_ONLY|$LANG"'
    )
    assert deltas(messages) == "GITHUB_TOKEN||C.UTF-8\n"


async def test_a_harness_that_cannot_start_fails_create_cleanly(
    backend: LocalSandboxBackend, settings: Settings
) -> None:
    value = "placeholder-value-9f2c"
    spec = SandboxSpec(
        sandbox_id=new_sandbox_id(), harness=value, limits=LIMITS, env={"SOME_KEY": value}
    )
    with pytest.raises(SandboxError) as raised:
        await backend.create(spec)
    message = str(raised.value)
    assert "failed to start" in message and "usage" in message
    assert value not in message and "[redacted]" in message
    assert not (settings.sandboxes_dir / spec.sandbox_id).exists()


async def test_unknown_sandboxes(backend: LocalSandboxBackend) -> None:
    assert await backend.status("sbx_missing") is SandboxState.STOPPED
    with pytest.raises(SandboxLost):
        await backend.write_input("sbx_missing", ["x"], token="t")
    with pytest.raises(SandboxLost):
        [lines async for lines in backend.open_output("sbx_missing", 0, line_cap=10)]
    with pytest.raises(SandboxLost):
        await backend.pause("sbx_missing")
    with pytest.raises(SandboxError):
        await backend.status("../escape")
    await backend.stop("sbx_missing")


async def test_creating_an_existing_sandbox_is_refused(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory
) -> None:
    sandbox_id = await make_sandbox()
    with pytest.raises(SandboxError, match="already exists"):
        await make_sandbox(sandbox_id=sandbox_id)
    assert await backend.status(sandbox_id) is SandboxState.RUNNING


async def test_sandboxes_start_concurrently_with_distinct_uids(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    ids = await asyncio.gather(*(make_sandbox() for _ in range(4)))
    uids = {sandbox_spec_on_disk(settings, sandbox_id)["uid"] for sandbox_id in ids}
    assert len(uids) == 4
    assert all(
        settings.sandbox_uid_base <= uid < settings.sandbox_uid_base + settings.sandbox_uid_count
        for uid in uids
    )


def test_check_runs_a_throwaway_sandbox(settings: Settings) -> None:
    LocalSandboxBackend(settings).check()


def test_check_reports_a_sandbox_that_cannot_start(settings: Settings) -> None:
    broken = LocalSandboxBackend(settings.model_copy(update={"sandbox_python": "/usr/bin/false"}))
    with pytest.raises(SandboxUnavailable, match="cannot start a sandbox"):
        broken.check()


async def test_read_only_mounts_are_visible_and_cannot_be_written(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "tool.txt").write_text("from the host\n")
    (shared / "tool.txt").chmod(0o644)
    sandbox_id = await make_sandbox(read_only_mounts={"/opt/chiron/extra/deep": shared})
    messages = await run_turn(
        backend,
        Reader(backend, sandbox_id),
        "cd /opt/chiron/extra/deep; cat tool.txt; touch new 2>/dev/null || echo ro",
    )
    assert deltas(messages) == "from the host\nro\n"
    assert not (shared / "new").exists()
    with pytest.raises(SandboxError, match="read-only mounts go under /opt/chiron/"):
        await make_sandbox(read_only_mounts={"/etc/cron.d": shared})


async def test_input_written_once_the_supervisor_serves_runs_when_the_harness_is_up(
    backend: LocalSandboxBackend,
) -> None:
    sandbox_id = new_sandbox_id()
    served: list[bool] = []
    receipts: list[asyncio.Task[InputReceipt]] = []

    def on_serving() -> None:
        # Called before `create` returns: the harness may still be starting.
        served.append(True)
        receipts.append(
            asyncio.ensure_future(
                backend.write_input(sandbox_id, [user_line("echo early-bird")], token="early")
            )
        )

    await backend.create(
        SandboxSpec(sandbox_id=sandbox_id, harness="shell", limits=LIMITS),
        on_serving=on_serving,
    )
    assert served == [True]
    receipt = await receipts[0]
    assert receipt.written
    reader = Reader(backend, sandbox_id, offset=receipt.offset)
    assert deltas(await reader.turn()) == "early-bird\n"


def test_start_up_compiles_the_harness_for_the_sandbox_python(
    settings: Settings, tmp_path: Path
) -> None:
    # A fresh install: the package without any bytecode, as sandboxes see it (read-only).
    package = tmp_path / "site" / "chiron"
    shutil.copytree(
        Path(chiron.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    backend = LocalSandboxBackend(settings.model_copy(update={"sandbox_isolation": "none"}))
    backend._package_dir = package
    backend.check()
    tag = subprocess.run(
        [str(settings.sandbox_python), "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    compiled = {p.name for p in (package / "harness" / "__pycache__").iterdir()}
    for module in ("__main__", "server", "shell_adapter", "protocol"):
        assert f"{module}.{tag}.pyc" in compiled
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").exists()
