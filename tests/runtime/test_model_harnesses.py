"""Model harnesses end to end: the API server, a bwrap sandbox, the egress proxy and a loopback
fake model API over HTTPS with its own CA (reached through a name override).

For each harness — our own `chiron` agent (on both provider APIs), the real `codex` CLI and the
real `claude` CLI — a turn that runs a command in the workspace completes with the model's
answer; the fake server receives the real key while the sandbox only ever holds the
placeholder; a later execution continues the conversation, also after the sandbox was replaced;
steering reaches the model and an interrupt ends the turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from chiron.store.engine import Store
from chiron.store.tables import metadata
from tests.conftest import RunningServer
from tests.egress.tls_servers import TestCA
from tests.fake_models.anthropic_messages import AnthropicMessagesServer
from tests.fake_models.base import FakeModelServer, ModelRequest, Reply, ToolCall
from tests.fake_models.openai_chat import OpenAIChatServer
from tests.fake_models.responses import ResponsesServer
from tests.helpers import create_session, execute, get_execution, poll_events, wait_terminal

pytestmark = pytest.mark.slow

MODEL_HOST = "api.model.test"
REAL_KEY = "real-model-key-7d1c9e5a3b"
TURN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Harness:
    """How one harness meets its model: which API, and how that API calls a shell command."""

    name: str
    provider: str
    fake: type[FakeModelServer]
    shell_call: Callable[[str], ToolCall]

    @property
    def base_url(self) -> str:
        return f"https://{MODEL_HOST}/v1" if self.provider == "openai" else f"https://{MODEL_HOST}"

    @property
    def key_secret(self) -> str:
        return "OPENAI_API_KEY" if self.provider == "openai" else "ANTHROPIC_API_KEY"

    def key_header(self, request: ModelRequest) -> str | None:
        if self.provider == "openai":
            return request.header("authorization")
        return request.header("x-api-key")

    @property
    def real_key_header(self) -> str:
        return f"Bearer {REAL_KEY}" if self.provider == "openai" else REAL_KEY


HARNESSES = [
    Harness("chiron", "openai", OpenAIChatServer, lambda c: ToolCall("shell", {"command": c})),
    Harness(
        "chiron", "anthropic", AnthropicMessagesServer, lambda c: ToolCall("shell", {"command": c})
    ),
    Harness("codex", "openai", ResponsesServer, lambda c: ToolCall("exec_command", {"cmd": c})),
    Harness(
        "claudecode",
        "anthropic",
        AnthropicMessagesServer,
        lambda c: ToolCall("Bash", {"command": c}),
    ),
]
IDS = [f"{h.name}-{h.provider}" for h in HARNESSES]


@dataclass
class ModelStack:
    harness: Harness
    fake: FakeModelServer
    server: RunningServer

    async def session(self, thread_key: str) -> dict[str, Any]:
        body: dict[str, Any] = (
            await create_session(self.server.client, thread_key, self.harness.name)
        )["session"]
        return body

    async def run(
        self, thread_key: str, text: str, **body: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = self.server.client
        execution_id = await execute(client, thread_key, text, **body)
        events = await wait_terminal(client, thread_key, execution_id, timeout=TURN_TIMEOUT)
        return await get_execution(client, thread_key, execution_id), events

    def model_requests(self) -> list[ModelRequest]:
        return self.fake.model_requests()


@pytest.fixture(params=HARNESSES, ids=IDS)
async def stack(
    request: pytest.FixtureRequest, server_factory: Any, tmp_path: Path
) -> AsyncIterator[ModelStack]:
    harness: Harness = request.param
    ca = TestCA(tmp_path / "model-ca")
    fake = harness.fake(ca.server_context([MODEL_HOST]))
    await fake.start()
    try:
        server: RunningServer = await server_factory(
            model_provider=harness.provider,
            model_base_url=harness.base_url,
            model="fake-model",
            model_max_retries=1,
            model_timeout_s=30,
            egress_upstream_ca=ca.cert_path,
            egress_resolve={MODEL_HOST: f"127.0.0.1:{fake.port}"},
        )
        header = "authorization" if harness.provider == "openai" else "x-api-key"
        secret = {
            "type": "http",
            "value": REAL_KEY,
            "hosts": [MODEL_HOST],
            "match_headers": [header],
        }
        response = await server.client.put(f"/api/secrets/{harness.key_secret}", json=secret)
        assert response.status_code == 200, response.text
        yield ModelStack(harness, fake, server)
    finally:
        await fake.stop()


def _output(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e["payload"]) for e in events)


def _harness_lines(events: list[dict[str, Any]], method: str) -> list[str]:
    """The `delta` of every stored harness line with this method (streamed text)."""
    deltas = []
    for event in events:
        if event["event_type"] == "session.output.line":
            message = json.loads(event["payload"])
            if message.get("method") == method:
                deltas.append(message["params"]["delta"])
    return deltas


async def test_a_turn_runs_commands_in_the_sandbox_and_the_key_stays_at_the_edge(
    stack: ModelStack, database_url: str
) -> None:
    command = (
        "printf 'import unittest\\nclass T(unittest.TestCase):\\n"
        "    def test_ok(self):\\n        self.assertEqual(1 + 1, 2)\\n' > test_calc.py"
        " && python3 -m unittest -q test_calc 2>&1; echo key=$" + stack.harness.key_secret
    )
    stack.fake.add(
        Reply(text="Running the tests.", tool_calls=(stack.harness.shell_call(command),)),
        Reply(text="All tests pass."),
    )
    await stack.session("api:model-turn")
    execution, events = await stack.run("api:model-turn", "create a test file and run the tests")

    assert execution["status"] == "completed", (execution, _output(events)[-3000:])
    assert execution["result_text"] == "All tests pass."
    assert "All tests pass." in "".join(_harness_lines(events, "item/agentMessage/delta"))
    requests = stack.model_requests()
    assert len(requests) >= 2
    # The model saw the command's output: the test ran in the workspace and the sandbox
    # holds only the placeholder.
    later = " ".join(r.text for r in requests[1:])
    assert "OK" in later
    assert f"key={stack.harness.key_secret}" in later
    assert {stack.harness.key_header(r) for r in requests} == {stack.harness.real_key_header}
    assert all(r.sni == MODEL_HOST for r in requests)
    assert REAL_KEY not in _output(events)

    store = Store(database_url)
    try:
        async with store.read() as conn:
            for table in metadata.sorted_tables:
                rows = (await conn.execute(sa.select(table))).all()
                assert REAL_KEY not in repr(rows), f"the real key is stored in {table.name}"
    finally:
        await store.dispose()


async def test_the_next_execution_continues_the_conversation_also_in_a_new_sandbox(
    stack: ModelStack,
) -> None:
    session = await stack.session("api:model-memory")
    first, _ = await stack.run("api:model-memory", "remember the word tangerine")
    assert first["status"] == "completed", first
    second, _ = await stack.run("api:model-memory", "which word did I ask you to remember?")
    assert second["status"] == "completed", second
    assert "tangerine" in stack.model_requests()[-1].text

    # The sandbox goes away (as after a crash or eviction); the next turn gets a new one.
    session = (await stack.server.client.get("/api/session/api:model-memory")).json()["session"]
    await stack.server.plane.backend.stop(session["sandbox_id"])
    third, events = await stack.run("api:model-memory", "and what was the word again?")
    assert third["status"] == "completed", third
    assert "session.sandbox_replaced" in [e["event_type"] for e in events]
    assert "tangerine" in stack.model_requests()[-1].text


async def test_steering_reaches_the_model_and_interrupt_ends_the_turn(
    stack: ModelStack,
) -> None:
    client = stack.server.client
    await stack.session("api:model-steer")
    stack.fake.add(
        Reply(tool_calls=(stack.harness.shell_call("sleep 4; echo slept"),)),
        Reply(text="Noted the colour."),
    )
    execution_id = await execute(client, "api:model-steer", "wait a little")
    async with asyncio.timeout(TURN_TIMEOUT):
        while not stack.model_requests():
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    steer = {"messages": [{"role": "user", "parts": [{"type": "text", "text": "use teal"}]}]}
    response = await client.post("/api/session/api:model-steer/messages", json=steer)
    assert response.status_code == 200, response.text
    await wait_terminal(client, "api:model-steer", execution_id, timeout=TURN_TIMEOUT)
    assert "use teal" in " ".join(r.text for r in stack.model_requests()[1:])

    # A model that never answers: the interrupt ends the turn anyway.
    stack.fake.add(Reply(hang=True))
    seen = len(stack.model_requests())
    execution_id = await execute(client, "api:model-steer", "this will hang")
    async with asyncio.timeout(TURN_TIMEOUT):
        while len(stack.model_requests()) <= seen:
            await asyncio.sleep(0.05)
    response = await client.post("/api/session/api:model-steer/interrupt", json={"reason": "user"})
    assert response.json()["interrupted"] is True
    async with asyncio.timeout(30):
        events = await wait_terminal(client, "api:model-steer", execution_id)
    assert events[-1]["event_type"] == "session.execution_cancelled", events[-1]
    # The session still works afterwards.
    after, _ = await stack.run("api:model-steer", "are you there?")
    assert after["status"] == "completed", after
    assert await poll_events(client, "api:model-steer", wait=0)


async def test_a_rejected_key_fails_the_execution_with_a_readable_error(stack: ModelStack) -> None:
    # Every request is refused (some clients retry a 401 once) until the key is fixed.
    stack.fake.default = Reply(status=401, error_message="invalid key")
    await stack.session("api:model-401")
    execution, events = await stack.run("api:model-401", "hello")
    assert execution["status"] == "failed", execution
    assert "401" in execution["error"], execution["error"]
    assert events[-1]["event_type"] == "session.execution_failed"
    # The session stays usable once the key is fixed.
    stack.fake.default = Reply(text="hi")
    after, _ = await stack.run("api:model-401", "hello again")
    assert after["status"] == "completed", after
