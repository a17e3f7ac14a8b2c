"""Brokered tokens: the control plane fetches a short-lived token from a broker, the proxy
applies it, a refresh replaces it, and neither the credential nor a token reaches the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.egress.tls_servers import EchoServer, TestCA
from tests.helpers import create_session, execute, output_deltas, wait_terminal

pytestmark = pytest.mark.slow

API = "api.example.test"
BROKER = "broker.example.test"
CREDENTIAL = "broker-credential-5a4b3c2d1e"


class TokenBroker:
    """POST /token with the right bearer credential → a new token each time."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self.issued: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            authorized = f"authorization: bearer {CREDENTIAL}" in head.lower()
            if authorized:
                token = f"minted-token-{len(self.issued) + 1:04d}"
                self.issued.append(token)
                body = json.dumps({"token": token, "expires_in": 31}).encode()
                status = b"200 OK"
            else:
                body, status = b"{}", b"401 Unauthorized"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[EchoServer, TokenBroker, TestCA]]:
    ca = TestCA(tmp_path / "upstream-ca")
    echo = EchoServer(ca.server_context([API]))
    broker = TokenBroker(ca.server_context([BROKER]))
    await echo.start()
    await broker.start()
    yield echo, broker, ca
    await broker.stop()
    await echo.stop()


async def test_brokered_token_is_applied_and_refreshed(
    server_factory: Any, services: tuple[EchoServer, TokenBroker, TestCA]
) -> None:
    echo, broker, ca = services
    server: RunningServer = await server_factory(
        egress_upstream_ca=ca.cert_path,
        egress_resolve={API: f"127.0.0.1:{echo.port}", BROKER: f"127.0.0.1:{broker.port}"},
    )
    client = server.client
    session = (await create_session(client, "api:brokered"))["session"]
    secret = {
        "type": "brokered_token",
        "value": CREDENTIAL,
        "hosts": [API],
        "broker_url": f"https://{BROKER}/token",
        "refresh_seconds": 60,
    }
    answer = await client.put("/api/secrets/API_BROKERED", json=secret)
    assert answer.status_code == 200, answer.text
    grant = {"secret": "API_BROKERED", "principal_id": session["principal_id"]}
    assert (await client.post("/api/grants", json=grant)).status_code == 200

    command = f"curl -s https://{API}/echo; echo; env"
    first = await execute(client, "api:brokered", command)
    events = await wait_terminal(client, "api:brokered", first, timeout=90)
    assert events[-1]["event_type"] == "session.execution_completed"
    assert echo.received[-1].header("authorization") == f"Bearer {broker.issued[0]}"

    async with asyncio.timeout(20):  # the token expires in 31 s minus a 30 s margin
        while len(broker.issued) < 2:
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # the listener reloads right after the refresh
    second = await execute(client, "api:brokered", f"curl -s -o /dev/null https://{API}/again")
    await wait_terminal(client, "api:brokered", second, timeout=60)
    assert echo.received[-1].header("authorization") == f"Bearer {broker.issued[-1]}"

    output = "\n".join(output_deltas(events))
    for value in [CREDENTIAL, *broker.issued]:
        assert value not in output
