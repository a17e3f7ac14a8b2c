"""The session API's contract: records, idempotency, conflicts and bad input (DESIGN.md §3)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, RunningServer
from tests.helpers import (
    create_session,
    execute,
    get_execution,
    poll_events,
    user_line,
    wait_terminal,
)

pytestmark = pytest.mark.slow


async def _event_count(client: httpx.AsyncClient, thread_key: str) -> int:
    return len(await poll_events(client, thread_key, wait=0))


async def test_create_get_and_list_sessions(server: RunningServer) -> None:
    client = server.client
    created = await create_session(client, "slack:C123:1712.55")
    assert created["created"] is True and created["harness_switched"] is False
    session = created["session"]
    assert session["status"] == "idle" and session["harness_type"] == "shell"
    assert session["principal_id"].startswith("prn_")
    again = await create_session(client, "slack:C123:1712.55")
    assert again["created"] is False and again["session"] == session
    got = (await client.get("/api/session/slack:C123:1712.55")).json()
    assert got["context"] == {
        "namespace": "slack",
        "rest": "C123:1712.55",
        "channel": "C123",
        "thread_ts": "1712.55",
    }
    for i in range(3):
        await create_session(client, f"api:list-{i}")
    first = (await client.get("/api/sessions", params={"limit": 2})).json()
    assert [s["thread_key"] for s in first["sessions"]] == ["api:list-2", "api:list-1"]
    rest = (
        await client.get("/api/sessions", params={"limit": 10, "cursor": first["next_cursor"]})
    ).json()
    assert [s["thread_key"] for s in rest["sessions"]] == ["api:list-0", "slack:C123:1712.55"]
    assert rest["next_cursor"] is None


async def test_harness_conflict_rejected_then_restart_switches(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only `shell` exists in this build; register a second name so a switch can be asked for.
    import chiron.runtime.session_service as service_module

    monkeypatch.setattr(
        service_module, "KNOWN_HARNESSES", service_module.KNOWN_HARNESSES | {"other"}
    )
    client = server.client
    await create_session(client, "api:switch")
    conflict = await client.post("/api/session/api:switch", json={"harness_type": "other"})
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["code"] == "harness_conflict"
    assert (body["existing_harness"], body["requested_harness"]) == ("shell", "other")
    switched = await client.post(
        "/api/session/api:switch",
        json={"harness_type": "other", "on_harness_conflict": "restart"},
    )
    assert switched.status_code == 200
    assert switched.json()["harness_switched"] is True
    assert switched.json()["session"]["harness_type"] == "other"
    types = [e["event_type"] for e in await poll_events(client, "api:switch", wait=0)]
    assert "session.harness_switched" in types


async def test_messages_are_idempotent_per_client_id(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:msg")
    body = {
        "messages": [
            {"client_message_id": "c1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        ]
    }
    first = (await client.post("/api/session/api:msg/messages", json=body)).json()
    second = (await client.post("/api/session/api:msg/messages", json=body)).json()
    assert first["message_ids"] == second["message_ids"]
    assert first["message_ids"][0].startswith("msg_") and len(first["message_ids"][0]) == 36


async def test_concurrent_executes_with_one_key_make_one_execution(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:idem")
    marker = "/workspace/runs.txt"
    body = {
        "idempotency_key": "same-key",
        "input_lines": [user_line(f"echo ran >> {marker}; sleep 0.5; wc -l < {marker}")],
    }
    answers = await asyncio.gather(
        *(client.post("/api/session/api:idem/execute", json=body) for _ in range(20))
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    ids = {a.json()["execution_id"] for a in answers}
    assert len(ids) == 1
    (execution_id,) = ids
    await wait_terminal(client, "api:idem", execution_id)
    execution = await get_execution(client, "api:idem", execution_id)
    assert execution["status"] == "completed"
    assert execution["result_text"].strip() == "1", "the harness ran more than once"
    replay = await client.post(
        "/api/session/api:idem/execute", json={"idempotency_key": "same-key", "input_lines": []}
    )
    assert replay.json()["execution_id"] == execution_id


async def test_second_active_execution_without_key_gets_409(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:busy")
    first = await execute(client, "api:busy", "sleep 2")
    second = await client.post(
        "/api/session/api:busy/execute", json={"input_lines": [user_line("echo no")]}
    )
    assert second.status_code == 409
    assert second.json()["code"] == "execution_active"
    assert second.json()["execution_id"] == first
    await wait_terminal(client, "api:busy", first)


async def test_allocation_only_execution_readies_sandbox(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:alloc")
    answer = await client.post("/api/session/api:alloc/execute", json={})
    execution_id = answer.json()["execution_id"]
    events = await wait_terminal(client, "api:alloc", execution_id)
    ready = [e for e in events if e["event_type"] == "session.sandbox_ready"]
    assert ready and ready[0]["payload"]["source"] == "cold_create"
    assert events[-1]["payload"]["completion_reason"] == "allocation_only"


BAD_REQUESTS: list[tuple[str, str, str, Any, int, str]] = [
    (
        "control char key",
        "POST",
        "/api/session/api:a%07b",
        {"harness_type": "shell"},
        400,
        "invalid_thread_key",
    ),
    (
        "no namespace",
        "POST",
        "/api/session/:rest",
        {"harness_type": "shell"},
        400,
        "invalid_thread_key",
    ),
    ("no rest", "POST", "/api/session/api:", {"harness_type": "shell"}, 400, "invalid_thread_key"),
    (
        "no colon",
        "POST",
        "/api/session/plain",
        {"harness_type": "shell"},
        400,
        "invalid_thread_key",
    ),
    (
        "json-like key",
        "POST",
        "/api/session/{x:1}",
        {"harness_type": "shell"},
        400,
        "invalid_thread_key",
    ),
    (
        "too long key",
        "POST",
        "/api/session/api:" + "k" * 600,
        {"harness_type": "shell"},
        400,
        "invalid_thread_key",
    ),
    (
        "unknown harness",
        "POST",
        "/api/session/api:new",
        {"harness_type": "nope"},
        422,
        "unknown_harness",
    ),
    ("missing harness", "POST", "/api/session/api:new", {}, 422, "validation_error"),
    (
        "multi-line input",
        "POST",
        "/api/session/api:bad/execute",
        {"input_lines": ["ok", "a\nb"]},
        400,
        "invalid_input_line",
    ),
    (
        "negative duration",
        "POST",
        "/api/session/api:bad/execute",
        {"max_duration_ms": -1},
        400,
        "invalid_duration",
    ),
    (
        "idle over max",
        "POST",
        "/api/session/api:bad/execute",
        {"max_duration_ms": 10, "idle_timeout_ms": 20},
        400,
        "invalid_duration",
    ),
    (
        "empty messages",
        "POST",
        "/api/session/api:bad/messages",
        {"messages": []},
        400,
        "empty_messages",
    ),
    (
        "bad role",
        "POST",
        "/api/session/api:bad/messages",
        {"messages": [{"role": "robot", "parts": []}]},
        422,
        "validation_error",
    ),
    ("missing session", "GET", "/api/session/api:ghost", None, 404, "session_not_found"),
    (
        "missing session execute",
        "POST",
        "/api/session/api:ghost/execute",
        {},
        404,
        "session_not_found",
    ),
    (
        "missing execution",
        "GET",
        "/api/session/api:bad/executions/exe_0",
        None,
        404,
        "execution_not_found",
    ),
    ("bad cursor", "GET", "/api/sessions?cursor=zzz", None, 400, "invalid_cursor"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_input_gets_documented_error_and_changes_nothing(
    server: RunningServer, method: str, path: str, body: Any, status: int, code: str
) -> None:
    client = server.client
    await create_session(client, "api:bad")
    before = await _event_count(client, "api:bad")
    sessions_before = (await client.get("/api/sessions")).json()["sessions"]
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["ok"] is False and payload["code"] == code and payload["error"]
    assert await _event_count(client, "api:bad") == before
    assert (await client.get("/api/sessions")).json()["sessions"] == sessions_before


async def test_malformed_json_and_oversized_bodies(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:raw-body")
    malformed = await client.post(
        "/api/session/api:raw-body/execute",
        content=b'{"input_lines": [',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_json"
    big = b'{"harness_type": "shell", "metadata": {"x": "' + b"a" * (3 * 1024 * 1024) + b'"}}'
    too_big = await client.post(
        "/api/session/api:big", content=big, headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "body_too_large"
    assert (await client.get("/api/session/api:big")).status_code == 404
    # The execute route takes up to 64 MiB: 3 MiB passes the limit.
    line = user_line("true") + " " * (3 * 1024 * 1024)
    allowed = await client.post("/api/session/api:raw-body/execute", json={"input_lines": [line]})
    assert allowed.status_code == 200


async def test_auth_missing_wrong_and_scoped_tokens(server: RunningServer) -> None:
    base = server.base_url
    async with httpx.AsyncClient(base_url=base) as anonymous:
        missing = await anonymous.get("/api/sessions")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await anonymous.get(
            "/api/sessions", headers={"Authorization": "Bearer not-the-key"}
        )
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
        assert (await anonymous.get("/healthz")).status_code == 200
    created = await server.client.post(
        "/api/keys", json={"name": "slack bot", "thread_prefixes": ["slack:"]}
    )
    token = created.json()["token"]
    await create_session(server.client, "cli:private")
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as scoped:
        assert (
            await scoped.post("/api/session/slack:C1:1", json={"harness_type": "shell"})
        ).status_code == 200
        forbidden = await scoped.get("/api/session/cli:private")
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
        listed = (await scoped.get("/api/sessions")).json()["sessions"]
        assert [s["thread_key"] for s in listed] == ["slack:C1:1"]
        assert (await scoped.get("/api/keys")).status_code == 403
    key_id = created.json()["key"]["key_id"]
    assert (await server.client.delete(f"/api/keys/{key_id}")).status_code == 200
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as revoked:
        assert (await revoked.get("/api/sessions")).status_code == 401
    assert ADMIN_KEY not in created.text


async def test_archive_stops_sandbox_and_keeps_history(server: RunningServer) -> None:
    client = server.client
    await create_session(client, "api:arch")
    execution_id = await execute(client, "api:arch", "echo kept")
    await wait_terminal(client, "api:arch", execution_id)
    sandbox_id = (await client.get("/api/session/api:arch")).json()["session"]["sandbox_id"]
    archived = await client.delete("/api/session/api:arch")
    assert archived.json()["session"]["status"] == "archived"
    assert not (server.settings.sandboxes_dir / sandbox_id).exists()
    assert len(await poll_events(client, "api:arch", wait=0)) > 3
    refused = await client.post("/api/session/api:arch/execute", json={})
    assert refused.status_code == 409 and refused.json()["code"] == "session_archived"
