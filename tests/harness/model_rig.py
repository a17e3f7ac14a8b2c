"""A loopback fake model API and one harness process using it, for the model-harness tests.

The harness process runs as in a sandbox (minus the sandbox): a private HOME, placeholder keys,
plain-HTTP base URLs on loopback. `ModelRig` drives it from async tests; `CliRig` is the rig of
the adapters that drive the real CLIs (`codex`, `claude`) from `harness-clis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.fake_models.base import FakeModelServer, ModelRequest, ToolCall
from tests.harness.conftest import HarnessProcess, Message

REPO = Path(__file__).resolve().parents[2]
CLI_BIN = REPO / "harness-clis" / "node_modules" / ".bin"


class ModelRig:
    """A fake model API plus the `adapter` harness process talking to it."""

    request_wait_s = 15.0  # how long `requests` waits by default

    def __init__(
        self, adapter: str, fake: FakeModelServer, root: Path, env: dict[str, str]
    ) -> None:
        self.adapter = adapter
        self.fake = fake
        self.workspace = root / "workspace"
        self.home = root / "home"
        self.workspace.mkdir()
        self.home.mkdir()
        self.env: dict[str, str] = {
            "HOME": str(self.home),
            "CHIRON_OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
            "CHIRON_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake.port}",
            "OPENAI_API_KEY": "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY": "ANTHROPIC_API_KEY",
            **env,
        }
        self.harness: HarnessProcess | None = None

    def start(self, **env: str) -> HarnessProcess:
        self.env.update(env)
        self.harness = HarnessProcess(self.workspace, self.adapter, self.env)
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

    async def requests(self, count: int, timeout: float | None = None) -> list[ModelRequest]:
        """The model requests, once at least `count` arrived."""
        deadline = time.monotonic() + (self.request_wait_s if timeout is None else timeout)
        while len(self.fake.model_requests()) < count:
            assert time.monotonic() < deadline, f"fewer than {count} model requests arrived"
            await asyncio.sleep(0.02)
        return self.fake.model_requests()

    async def no_more_lines(self, wait: float = 0.5) -> None:
        """Nothing follows a turn's terminal line (a second terminal would leak onwards)."""
        await asyncio.sleep(wait)
        assert self.h.lines.empty(), self.h.lines.get_nowait()


RigT = TypeVar("RigT", bound=ModelRig)


@contextlib.asynccontextmanager
async def serving(fake: FakeModelServer, make_rig: Callable[[], RigT]) -> AsyncIterator[RigT]:
    """Start `fake`, then make the rig (which reads its port); stop both afterwards."""
    await fake.start()
    rig = make_rig()
    try:
        yield rig
    finally:
        await asyncio.to_thread(rig.stop)
        await fake.stop()


def require_cli(name: str) -> None:
    """Skip the calling test module when the CLI is not installed."""
    if not (CLI_BIN / name).exists():
        pytest.skip(
            f"the {name} CLI is not installed (npm ci --prefix harness-clis)",
            allow_module_level=True,
        )


class CliRig(ModelRig):
    """The rig of an adapter driving a real CLI, with what tells that CLI's requests apart."""

    def __init__(
        self,
        adapter: str,
        fake: FakeModelServer,
        root: Path,
        *,
        shell_call: Callable[[str], ToolCall],
        user_texts: Callable[[ModelRequest], list[str]],
    ) -> None:
        super().__init__(
            adapter,
            fake,
            root,
            {
                "PATH": "/usr/bin:/bin",
                "CHIRON_CLI_BIN": str(CLI_BIN),
                "NO_PROXY": "127.0.0.1,localhost",
                "CHIRON_MODEL_MAX_RETRIES": "1",
                "CHIRON_MODEL_TIMEOUT_S": "20",
            },
        )
        self.shell_call = shell_call  # the model's call of the CLI's shell tool
        self.user_texts = user_texts  # the user's words in a request, without the CLI's own
