"""The credential boundary through the whole control plane: a session's sandbox reaches a
granted service only through the egress proxy, with the real token added at the edge.

Real parts: the API server, bwrap sandboxes, mitmproxy, `curl` inside the sandbox, and a
loopback HTTPS server with its own CA that the proxy reaches by a name override.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from chiron.store.engine import Store
from chiron.store.tables import metadata
from tests.conftest import RunningServer
from tests.egress.tls_servers import EchoServer, TestCA
from tests.helpers import create_session, execute, output_deltas, poll_events, wait_terminal

pytestmark = pytest.mark.slow

API = "api.example.test"
UNLISTED = "unlisted.example.test"
REAL_TOKEN = "real-tok-9d8c7b6a5f4e3d2c1b0a"


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[tuple[EchoServer, TestCA]]:
    ca = TestCA(tmp_path / "upstream-ca")
    server = EchoServer(ca.server_context([API, UNLISTED]))
    await server.start()
    yield server, ca
    await server.stop()


async def _server(server_factory: Any, echo: tuple[EchoServer, TestCA]) -> RunningServer:
    echo_server, ca = echo
    target = f"127.0.0.1:{echo_server.port}"
    started: RunningServer = await server_factory(
        egress_upstream_ca=ca.cert_path,
        egress_resolve={API: target, UNLISTED: target},
    )
    return started


async def test_granted_secret_reaches_service_only_at_the_edge(
    server_factory: Any, echo: tuple[EchoServer, TestCA], database_url: str
) -> None:
    server = await _server(server_factory, echo)
    client = server.client
    session = (await create_session(client, "api:egress"))["session"]
    secret = {"type": "http", "value": REAL_TOKEN, "hosts": [API], "mode": "replace"}
    assert (await client.put("/api/secrets/API_TOKEN", json=secret)).status_code == 200
    grant = {"secret": "API_TOKEN", "principal_id": session["principal_id"]}
    assert (await client.post("/api/grants", json=grant)).status_code == 200

    command = (
        f'curl -s https://{API}/echo -H "Authorization: Bearer $API_TOKEN"; echo; '
        f"curl -s -o /dev/null -w 'unlisted:%{{http_connect}}\\n' https://{UNLISTED}/x; "
        "env | sort; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c API_TOKEN; "
        "echo token=$API_TOKEN"
    )
    execution_id = await execute(client, "api:egress", command)
    events = await wait_terminal(client, "api:egress", execution_id, timeout=90)
    assert events[-1]["event_type"] == "session.execution_completed", events[-1]
    output = "\n".join(output_deltas(events))

    echo_server, _ = echo
    seen = [r.header("authorization") for r in echo_server.received if r.sni == API]
    assert f"Bearer {REAL_TOKEN}" in seen, "the service did not get the real token"
    assert "token=API_TOKEN" in output, "the sandbox holds the placeholder"
    # The echoed header came back as the placeholder (stored redacted again, as any Bearer
    # credential in output is); the proxy-level tests check the placeholder byte for byte.
    assert REAL_TOKEN not in output
    assert '["Authorization", "Bearer [REDACTED]"]' in output
    assert "unlisted:403" in output, output[-3000:]
    async with asyncio.timeout(10):
        while not any(
            e["event_type"] == "session.egress_denied" and e["payload"]["host"] == UNLISTED
            for e in await poll_events(client, "api:egress", wait=1)
        ):
            await asyncio.sleep(0.1)

    # The audit trail names the secret it applied, never its value.
    async with asyncio.timeout(10):
        while True:
            audit = (await client.get("/api/audit", params={"thread_key": "api:egress"})).json()
            records = audit.get("records") or audit.get("audit") or []
            if any("API_TOKEN" in json.dumps(r) for r in records):
                break
            await asyncio.sleep(0.2)

    # Nothing stored anywhere holds the real value.
    store = Store(database_url)
    try:
        async with store.read() as conn:
            for table in metadata.sorted_tables:
                rows = (await conn.execute(sa.select(table))).all()
                assert REAL_TOKEN not in repr(rows), f"real value stored in {table.name}"
    finally:
        await store.dispose()
    for path in server.settings.home.rglob("*"):
        if path.is_file() and path.suffix in {".log", ".json", ""} and path.stat().st_size < 50e6:
            assert REAL_TOKEN.encode() not in path.read_bytes(), f"real value in {path}"


async def test_grant_after_the_sandbox_exists_gives_it_network_next_turn(
    server_factory: Any, echo: tuple[EchoServer, TestCA]
) -> None:
    server = await _server(server_factory, echo)
    client = server.client
    session = (await create_session(client, "api:later"))["session"]
    first = await execute(
        client, "api:later", f"curl -s -m 5 https://{API}/x >/dev/null || echo offline"
    )
    events = await wait_terminal(client, "api:later", first, timeout=60)
    assert output_deltas(events) == ["offline"]

    secret = {"type": "http", "value": REAL_TOKEN, "hosts": [API]}
    assert (await client.put("/api/secrets/API_TOKEN", json=secret)).status_code == 200
    grant = {"secret": "API_TOKEN", "principal_id": session["principal_id"]}
    assert (await client.post("/api/grants", json=grant)).status_code == 200

    second = await execute(
        client, "api:later", f'curl -s -o /dev/null -w "%{{http_code}}" https://{API}/x'
    )
    events = await wait_terminal(client, "api:later", second, timeout=60)
    assert output_deltas(events) == ["200"]
    assert any(e["event_type"] == "session.sandbox_replaced" for e in events)
