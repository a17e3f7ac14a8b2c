"""Fixtures for sandbox tests: a backend on a private CHIRON_HOME and real bwrap sandboxes.

Every sandbox a test creates is stopped in teardown, whatever the test did to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chiron.sandbox.backend import OutputLine, ResourceLimits, SandboxSpec
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings

LIMITS = ResourceLimits(
    memory_bytes=4 << 30, cpu_seconds=600, max_processes=256, file_bytes=1 << 30
)
LINE_CAP = 1 << 20
TURN_TIMEOUT_S = 30.0


def user_line(text: str) -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}})


def new_sandbox_id() -> str:
    return f"sbx_{secrets.token_hex(8)}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
async def backend(settings: Settings) -> AsyncIterator[LocalSandboxBackend]:
    backend = LocalSandboxBackend(settings)
    yield backend
    for info in await backend.list():
        await backend.stop(info.sandbox_id)


SandboxFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_sandbox(backend: LocalSandboxBackend) -> SandboxFactory:
    async def make(**overrides: Any) -> str:
        spec = SandboxSpec(
            sandbox_id=overrides.pop("sandbox_id", new_sandbox_id()),
            harness=overrides.pop("harness", "shell"),
            limits=overrides.pop("limits", LIMITS),
            **overrides,
        )
        return await backend.create(spec)

    return make


@dataclass
class Reader:
    """Reads one sandbox's output as parsed notifications, remembering where it stopped."""

    backend: LocalSandboxBackend
    sandbox_id: str
    offset: int = 0
    line_cap: int = LINE_CAP
    raw: list[OutputLine] = field(default_factory=list)

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TURN_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Notifications from `offset` up to and including the first matching `predicate`."""
        messages: list[dict[str, Any]] = []
        stream = self.backend.open_output(self.sandbox_id, self.offset, line_cap=self.line_cap)
        async with asyncio.timeout(timeout), contextlib.aclosing(stream):
            async for lines in stream:
                for line in lines:
                    self.raw.append(line)
                    self.offset = line.end_offset
                    message = json.loads(line.data) if line.original_bytes is None else {}
                    messages.append(message)
                    if predicate(message):
                        # Lines after it in this chunk are read again from `offset` next time.
                        return messages
        raise AssertionError(f"output ended before the expected line: {messages[-5:]}")

    async def turn(self, timeout: float = TURN_TIMEOUT_S) -> list[dict[str, Any]]:
        return await self.until(lambda m: m.get("method") == "turn/completed", timeout)


async def run_turn(
    backend: LocalSandboxBackend, reader: Reader, command: str
) -> list[dict[str, Any]]:
    await backend.write_input(reader.sandbox_id, [user_line(command)], token=secrets.token_hex(8))
    return await reader.turn()


def deltas(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["params"]["delta"]
        for m in messages
        if m.get("method") == "item/commandExecution/outputDelta"
    )


def agent_text(messages: list[dict[str, Any]]) -> str | None:
    for m in messages:
        item = m.get("params", {}).get("item", {})
        if m.get("method") == "item/completed" and item.get("type") == "agentMessage":
            text: str = item["text"]
            return text
    return None


def turn_status(messages: list[dict[str, Any]]) -> str:
    status: str = messages[-1]["params"]["turn"]["status"]
    return status


def sandbox_spec_on_disk(settings: Settings, sandbox_id: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        (settings.sandboxes_dir / sandbox_id / "spec.json").read_text()
    )
    return spec
