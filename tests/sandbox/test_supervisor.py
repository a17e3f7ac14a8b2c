"""The supervisor's own pieces: its stdlib-only JSON and its socket protocol's edges."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from chiron.sandbox import supervisor
from chiron.settings import Settings
from tests.sandbox.conftest import SandboxFactory


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True, False, 'é\n"x']}, [], {}, "text", 0, -7],
)
def test_json_round_trips_like_the_json_module(value: object) -> None:
    assert supervisor.loads(supervisor.dumps(value)) == value
    assert json.loads(supervisor.dumps(value)) == value
    assert supervisor.loads(json.dumps(value)) == value


@pytest.mark.parametrize("text", ["", "{", '{"a": 1', "[1,", "x", '{"a": 1} trailing'])
def test_json_rejects_broken_text_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        supervisor.loads(text)


def test_json_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        supervisor.dumps({"x": object()})


def _ask(path: Path, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(raw)
        return sock.makefile("rb").readline()


async def test_bad_requests_get_clear_refusals(
    make_sandbox: SandboxFactory, settings: Settings, tmp_path: Path
) -> None:
    sandbox_id = await make_sandbox()
    # The real path may exceed the unix socket limit: go through a short symlink.
    link = tmp_path / "s"
    link.symlink_to(settings.sandboxes_dir / sandbox_id)
    sock = link / "supervisor.sock"
    assert json.loads(_ask(sock, b"not json\n"))["ok"] is False
    assert json.loads(_ask(sock, b'{"op": "fly"}\n')) == {"ok": False, "error": "unknown op"}
    assert json.loads(_ask(sock, b'{"op": "read", "offset": 999999}\n'))["ok"] is False
    answer = json.loads(_ask(sock, b'{"op": "write", "lines": "x", "token": "t"}\n'))
    assert answer["ok"] is False
    status = json.loads(_ask(sock, b'{"op": "status"}\n'))
    assert status["state"] == "running" and status["exit_code"] is None and status["pid"] > 1
