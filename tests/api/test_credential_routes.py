"""The admin credential API (DESIGN.md §8) against a real server: values are write-only,
declarations fail closed naming the field, and only the admin key gets in."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chiron.redaction import default_redactor
from chiron.store import credential_queries
from tests.conftest import RunningServer
from tests.helpers import create_session, execute, wait_terminal

pytestmark = pytest.mark.slow

# Shapes no token pattern knows: if these are hidden, it is because the registry said so.
VALUE = "Real-Value-7f3a9c1e5b2d"
OTHER_VALUE = "Other-Real-Value-4e8b0a6c"


@pytest.fixture(autouse=True)
def _forget_known_values() -> Iterator[None]:
    """The redactor is per process: leave it as found for the next test on this worker."""
    yield
    default_redactor.set_known_values([])


def declaration(**fields: Any) -> dict[str, Any]:
    return {"type": "http", "value": VALUE, "hosts": ["api.example.com"], **fields}


async def test_round_trip_without_ever_returning_a_value(server: RunningServer) -> None:
    client = server.client
    answers: list[httpx.Response] = []

    async def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await client.request(method, path, json=body)
        answers.append(response)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        assert result["ok"] is True
        return result

    created = await call("PUT", "/api/secrets/GITHUB_TOKEN", declaration(hosts=["api.github.com"]))
    assert created["created"] is True
    secret = created["secret"]
    assert (secret["name"], secret["type"], secret["mode"]) == ("GITHUB_TOKEN", "http", "replace")
    assert len(secret["fingerprint"]) == 8
    replaced = await call(
        "PUT", "/api/secrets/GITHUB_TOKEN", declaration(hosts=["api.github.com"], value=OTHER_VALUE)
    )
    assert replaced["created"] is False
    assert replaced["secret"]["fingerprint"] != secret["fingerprint"]
    await call(
        "PUT",
        "/api/secrets/SLACK_BOT",
        declaration(
            hosts=["*.slack.com"], inject_header="Authorization", inject_formatter="Bearer {value}"
        ),
    )
    listed = await call("GET", "/api/secrets")
    assert [s["name"] for s in listed["secrets"]] == ["GITHUB_TOKEN", "SLACK_BOT"]

    assert (await call("PUT", "/api/roles/dev", {"description": "developers"}))["created"]
    assert not (await call("PUT", "/api/roles/dev"))["created"]
    session = await create_session(client, "api:creds")
    principal = session["session"]["principal_id"]
    roles = await call("PUT", f"/api/principals/{principal}/roles/dev")
    assert roles == {"ok": True, "principal_id": principal, "roles": ["dev"]}

    grant = {"secret": "GITHUB_TOKEN", "principal_id": principal, "priority": 3}
    first = await call("POST", "/api/grants", grant)
    again = await call("POST", "/api/grants", grant)
    assert first["created"] and not again["created"]
    assert again["grant"]["grant_id"] == first["grant"]["grant_id"]
    await call("POST", "/api/grants", {"secret": "SLACK_BOT", "role": "dev"})
    assert len((await call("GET", "/api/grants", None))["grants"]) == 2

    effective = (await call("GET", f"/api/principals/{principal}/effective"))["effective"]
    assert effective["principal_id"] == principal and len(effective["hash"]) == 64
    assert effective["allowed_hosts"] == ["*.slack.com", "api.github.com"]
    assert effective["env"] == {"GITHUB_TOKEN": "GITHUB_TOKEN"}
    assert [s["name"] for s in effective["secrets"]] == ["GITHUB_TOKEN", "SLACK_BOT"]
    assert effective["hosts"]["*.slack.com"][0]["kind"] == "inject"
    same = (await call("GET", f"/api/principals/{principal}/effective"))["effective"]
    assert same["hash"] == effective["hash"]

    removed = await call("DELETE", "/api/grants", {"secret": "SLACK_BOT", "role": "dev"})
    assert removed["removed"] is True
    assert (await call("DELETE", "/api/grants", {"secret": "SLACK_BOT", "role": "dev"}))[
        "removed"
    ] is False
    after = (await call("GET", f"/api/principals/{principal}/effective"))["effective"]
    assert after["hash"] != effective["hash"] and after["allowed_hosts"] == ["api.github.com"]

    assert (await call("DELETE", "/api/secrets/GITHUB_TOKEN"))["removed_grants"] == 1
    missing = await client.delete("/api/secrets/GITHUB_TOKEN")
    assert missing.status_code == 404
    assert missing.json() == {
        "ok": False,
        "error": "no secret named 'GITHUB_TOKEN'",
        "code": "secret_not_found",
    }
    assert [s["name"] for s in (await call("GET", "/api/secrets"))["secrets"]] == ["SLACK_BOT"]
    for response in answers:
        assert VALUE not in response.text and OTHER_VALUE not in response.text


INVALID = [
    ("missing hosts", "TOKEN", {"type": "http", "value": VALUE}, "hosts"),
    ("catch-all host", "TOKEN", declaration(hosts=["*"]), "hosts[0]"),
    ("bare TLD wildcard", "TOKEN", declaration(hosts=["*.com"]), "hosts[0]"),
    ("IP literal", "TOKEN", declaration(hosts=["10.0.0.1"]), "hosts[0]"),
    (
        "mixed modes",
        "TOKEN",
        declaration(inject_header="X-Key", match_headers=["X-Key"]),
        "inject_header",
    ),
    ("unknown field", "TOKEN", declaration(colour="red"), "colour"),
    ("lowercase name", "token", declaration(), "name"),
    ("value in a host", "TOKEN", declaration(hosts=[VALUE]), "hosts[0]"),
]


@pytest.mark.parametrize(
    ("name", "body", "field"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID]
)
async def test_invalid_declarations_are_422_naming_the_field_and_never_echo_the_value(
    server: RunningServer,
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: dict[str, Any],
    field: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await server.client.put(f"/api/secrets/{name}", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["ok"] is False and answer["code"] == "invalid_declaration"
    assert answer["error"].startswith(f"{field}: ") and answer["field"] == field
    assert VALUE not in response.text
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert VALUE not in logged
    assert (await server.client.get("/api/secrets")).json()["secrets"] == []


async def test_schema_errors_use_the_error_shape_without_the_value(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for body in (
        {"type": "ftp", "value": VALUE, "hosts": ["a.example.com"]},
        {"type": "http", "value": VALUE, "hosts": "a.example.com"},
        {"type": "http", "value": [VALUE], "hosts": ["a.example.com"]},
        {"value": VALUE, "hosts": ["a.example.com"]},
    ):
        response = await server.client.put("/api/secrets/TOKEN", json=body)
        assert response.status_code == 422 and response.json()["ok"] is False
        assert VALUE not in response.text
    assert VALUE not in caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    unknown_type = await server.client.put(
        "/api/secrets/TOKEN", json={"type": "ftp", "value": VALUE, "hosts": ["a.example.com"]}
    )
    assert unknown_type.json()["error"].startswith("type: ")


async def test_unknown_names_are_404(server: RunningServer) -> None:
    client = server.client
    await client.put("/api/secrets/TOKEN", json=declaration())
    cases = [
        ("POST", "/api/grants", {"secret": "MISSING", "principal_id": "prn_1"}, "secret_not_found"),
        ("POST", "/api/grants", {"secret": "TOKEN", "role": "ops"}, "role_not_found"),
        (
            "DELETE",
            "/api/grants",
            {"secret": "MISSING", "principal_id": "prn_1"},
            "secret_not_found",
        ),
        ("PUT", "/api/principals/prn_1/roles/ops", None, "role_not_found"),
        ("DELETE", "/api/secrets/MISSING", None, "secret_not_found"),
    ]
    for method, path, body, code in cases:
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == code
    both = await client.post(
        "/api/grants", json={"secret": "TOKEN", "principal_id": "p", "role": "r"}
    )
    assert both.status_code == 422 and both.json()["field"] == "principal_id"


ROUTES = [
    ("PUT", "/api/secrets/TOKEN", declaration()),
    ("GET", "/api/secrets", None),
    ("DELETE", "/api/secrets/TOKEN", None),
    ("PUT", "/api/roles/dev", None),
    ("PUT", "/api/principals/prn_1/roles/dev", None),
    ("DELETE", "/api/principals/prn_1/roles/dev", None),
    ("GET", "/api/grants", None),
    ("POST", "/api/grants", {"secret": "TOKEN", "principal_id": "prn_1"}),
    ("DELETE", "/api/grants", {"secret": "TOKEN", "principal_id": "prn_1"}),
    ("GET", "/api/principals/prn_1/effective", None),
    ("GET", "/api/audit", None),
]


async def test_only_the_admin_key_gets_in(server: RunningServer) -> None:
    created = await server.client.post(
        "/api/keys", json={"name": "front door", "thread_prefixes": ["slack:"]}
    )
    token = created.json()["token"]
    async with (
        httpx.AsyncClient(base_url=server.base_url) as anonymous,
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as front_door,
    ):
        for method, path, body in ROUTES:
            missing = await anonymous.request(method, path, json=body)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            forbidden = await front_door.request(method, path, json=body)
            assert forbidden.status_code == 403, path
            assert forbidden.json()["code"] == "forbidden"
            assert VALUE not in missing.text + forbidden.text
    assert (await server.client.get("/api/secrets")).json()["secrets"] == []


async def test_audit_filters(server: RunningServer) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    async with server.plane.store.write() as conn:
        for i, thread_key in enumerate(["cli:a", "cli:b", "cli:a"]):
            await credential_queries.insert_audit_record(
                conn,
                time=start + timedelta(minutes=i),
                thread_key=thread_key,
                principal_id="prn_1",
                host="api.example.com",
                method="GET",
                path=f"/{i}",
                status=200 if i else 403,
                secret_names=["TOKEN"] if i else [],
            )
    client = server.client
    everything = (await client.get("/api/audit")).json()["records"]
    assert [r["path"] for r in everything] == ["/2", "/1", "/0"]
    assert everything[0]["secret_names"] == ["TOKEN"] and everything[2]["status"] == 403
    only_a = (await client.get("/api/audit", params={"thread_key": "cli:a"})).json()["records"]
    assert [r["path"] for r in only_a] == ["/2", "/0"]
    since = (start + timedelta(seconds=30)).isoformat()
    recent = (await client.get("/api/audit", params={"since": since, "limit": 1})).json()
    assert [r["path"] for r in recent["records"]] == ["/2"]
    too_many = await client.get("/api/audit", params={"limit": 5000})
    assert too_many.status_code == 422 and too_many.json()["ok"] is False


async def test_stored_values_are_redacted_in_session_output_even_after_a_restart(
    server_factory: Any,
) -> None:
    first = await server_factory()
    put = await first.client.put("/api/secrets/TOKEN", json=declaration())
    assert put.status_code == 200
    await create_session(first.client, "api:leak")
    execution_id = await execute(first.client, "api:leak", f"echo 'leaked {VALUE}'")
    events = await wait_terminal(first.client, "api:leak", execution_id)
    dumped = json.dumps(events)
    assert VALUE not in dumped and "leaked [REDACTED]" in dumped
    # A new control plane on the same home and database loads the values before anything runs.
    default_redactor.set_known_values([])
    second = await server_factory()
    assert default_redactor.redact(f"x {VALUE} y") == "x [REDACTED] y"
    # Deleting it (the new server's first credential call) does not make it showable again.
    assert (await second.client.delete("/api/secrets/TOKEN")).status_code == 200
    assert default_redactor.redact(f"x {VALUE} y") == "x [REDACTED] y"
