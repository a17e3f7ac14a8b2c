"""Acceptance: code inside a bwrap sandbox tries to break out, and every attempt fails.

Runs as root on purpose (as the server does in production): the sandbox must still be an
unprivileged uid without capabilities, with no view of the host, other sandboxes or the
network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chiron.sandbox import host_processes
from chiron.sandbox.backend import SandboxState
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.sandbox.conftest import (
    Reader,
    SandboxFactory,
    deltas,
    run_turn,
    sandbox_spec_on_disk,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the production layout runs as root")


def _host_address() -> str | None:
    """A non-loopback IPv4 address of this host, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture
async def host_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server on all host addresses that records who connected."""
    connections: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(accept, "0.0.0.0", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, connections


async def test_no_way_into_the_host_files(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    marker = f"chiron-secret-{secrets.token_hex(8)}"
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "chiron.db").write_text(marker)
    (settings.home / "admin.key").write_text(marker)
    # A positive control: the search below must find the sandbox's own copy.
    sandbox_id = await make_sandbox(files={"own.txt": marker.encode()})
    host_homes = [f"/home/{name}" for name in os.listdir("/home")] + ["/root", str(Path.home())]
    guesses = [*host_homes, str(settings.home), str(settings.home / "chiron.db")]
    guesses.append(str(settings.sandboxes_dir / sandbox_id))
    probe = " ".join(f"'{p}'" for p in guesses)
    script = (
        f'for p in {probe}; do [ -e "$p" ] && echo "visible $p"; done; '
        "cat /etc/shadow >/dev/null 2>&1 && echo shadow-readable; "
        "cat /proc/1/environ >/dev/null 2>&1 && echo init-environ-readable; "
        "touch /usr/chiron-test 2>/dev/null && echo usr-writable; "
        "ls /root >/dev/null 2>&1 && echo root-listable; "
        f"grep -rsl {marker} / --exclude-dir=proc --exclude-dir=dev --exclude-dir=usr; "
        "echo done"
    )
    messages = await run_turn(backend, Reader(backend, sandbox_id), script)
    assert deltas(messages) == "/workspace/own.txt\ndone\n"


async def test_no_root_no_capabilities(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    messages = await run_turn(
        backend,
        Reader(backend, sandbox_id),
        "id -u; id -g; id -G; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' "
        "/proc/self/status | tr -s '\\t' ' '; "
        "mount -t tmpfs none /tmp 2>/dev/null && echo mounted; "
        "unshare --mount true 2>/dev/null && echo unshared; echo done",
    )
    assert deltas(messages) == (
        f"{uid}\n{uid}\n{uid}\n"
        "CapPrm: 0000000000000000\nCapEff: 0000000000000000\n"
        "CapBnd: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1\ndone\n"
    )
    assert uid != 0


async def test_no_network_at_all(
    backend: LocalSandboxBackend,
    make_sandbox: SandboxFactory,
    host_listener: tuple[int, list[str]],
) -> None:
    port, connections = host_listener
    targets = ["127.0.0.1"]
    if (address := _host_address()) is not None:
        targets.append(address)
    probe = (
        "import socket\n"
        f"for host in {targets!r}:\n"
        "    try:\n"
        f"        socket.create_connection((host, {port}), timeout=2)\n"
        "        print('connected', host)\n"
        "    except OSError:\n"
        "        print('blocked')\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 443)\n"
        "    print('resolved')\n"
        "except OSError:\n"
        "    print('no dns')\n"
    )
    sandbox_id = await make_sandbox(files={"probe.py": probe.encode()})
    script = "python3 probe.py; tail -n +3 /proc/net/dev | cut -d: -f1"
    messages = await run_turn(backend, Reader(backend, sandbox_id), script)
    assert deltas(messages).split() == ["blocked"] * len(targets) + ["no", "dns", "lo"]
    assert connections == []


async def test_sandboxes_cannot_see_or_touch_each_other(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    marker = f"other-sandbox-{secrets.token_hex(8)}"
    other = await make_sandbox()
    other_reader = Reader(backend, other)
    await run_turn(
        backend, other_reader, f"echo {marker} > mine.txt; sleep 1001 >/dev/null 2>&1 & echo ok"
    )
    other_uid = sandbox_spec_on_disk(settings, other)["uid"]
    other_workspace = settings.sandboxes_dir / other / "workspace"

    sandbox_id = await make_sandbox(files={"own.txt": marker.encode()})
    reader = Reader(backend, sandbox_id)
    messages = await run_turn(
        backend,
        reader,
        f"[ -e '{other_workspace}' ] && echo visible; "
        f"grep -rsl {marker} / --exclude-dir=proc --exclude-dir=dev --exclude-dir=usr; "
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c 'sleep 100[1]'; "
        "ls /proc | grep -cE '^[0-9]+$'",
    )
    lines = deltas(messages).split()
    assert lines[0] == "/workspace/own.txt"  # its own copy only
    assert lines[1] == "0"  # no `sleep 1001` in sight
    assert int(lines[2]) < 10  # only its own few processes
    assert len(lines) == 3

    # Signalling everything it may signal hits only itself.
    await backend.write_input(
        sandbox_id, ['{"type":"user","message":{"content":"kill -9 -1"}}'], token="kill"
    )
    deadline = asyncio.get_running_loop().time() + 10
    while await backend.status(sandbox_id) is not SandboxState.GONE:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert await backend.status(other) is SandboxState.RUNNING
    sleepers = [
        pid
        for pid in host_processes.pids_of_uid(other_uid)
        if host_processes.cmdline(pid) == b"sleep\x001001\x00"
    ]
    assert len(sleepers) == 1


async def test_nothing_survives_stop(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    await run_turn(
        backend,
        Reader(backend, sandbox_id),
        "setsid nohup sleep 1000 >/dev/null 2>&1 & "
        "( ( exec -a escapee sleep 1002 >/dev/null 2>&1 & ) & ); echo launched",
    )
    assert len(host_processes.pids_of_uid(uid)) >= 3  # harness, two sleeps (plus bash left)
    await backend.stop(sandbox_id)
    assert host_processes.pids_of_uid(uid) == []
    assert not (settings.sandboxes_dir / sandbox_id).exists()


async def test_nothing_survives_stop_after_the_supervisor_died(
    backend: LocalSandboxBackend, make_sandbox: SandboxFactory, settings: Settings
) -> None:
    sandbox_id = await make_sandbox()
    uid = sandbox_spec_on_disk(settings, sandbox_id)["uid"]
    await run_turn(backend, Reader(backend, sandbox_id), "setsid sleep 1000 >/dev/null 2>&1 &")
    pid = int((settings.sandboxes_dir / sandbox_id / "supervisor.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    await backend.stop(sandbox_id)
    assert host_processes.pids_of_uid(uid) == []
