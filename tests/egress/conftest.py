"""Fixtures for egress tests: a loopback HTTPS echo server with its own CA, a real egress
proxy whose name overrides point three test names at it, and (for the slow tests) a sandbox
backend sharing the proxy's CHIRON_HOME.

Every name resolves to the echo server only through the proxy's overrides
(`CHIRON_EGRESS_RESOLVE`); nothing else on the host knows them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chiron.egress import AuditRecord, EgressOptions, EgressProxy
from chiron.sandbox.local_backend import LocalSandboxBackend
from chiron.settings import Settings
from tests.egress.handler_server import HandlerServer
from tests.egress.tls_servers import EchoServer, TestCA

API = "api.example.test"
OTHER = "other.example.test"
UNLISTED = "unlisted.example.test"
TOKEN_VALUE = "real-ghp-4f1d2a9c7e6b5a4f3e2d1c0b"
TOKEN_NAME = "GITHUB_TOKEN"


@dataclass
class Egress:
    proxy: EgressProxy
    server: EchoServer
    home: Path
    audits: list[AuditRecord] = field(default_factory=list)
    denials: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "upstream-ca")


@pytest.fixture
async def echo_server(test_ca: TestCA) -> AsyncIterator[EchoServer]:
    server = EchoServer(test_ca.server_context([API, OTHER, UNLISTED]))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def egress(tmp_path: Path, test_ca: TestCA, echo_server: EchoServer) -> AsyncIterator[Egress]:
    home = tmp_path / "home"
    target = f"127.0.0.1:{echo_server.port}"
    audits: list[AuditRecord] = []
    denials: list[tuple[str, str, str, str]] = []
    proxy = EgressProxy(
        EgressOptions(
            home=home,
            upstream_ca=test_ca.cert_path,
            resolve={API: target, OTHER: target, UNLISTED: target},
        ),
        on_audit=audits.append,
        on_denied=lambda *denial: denials.append(denial),
    )
    await proxy.start()
    try:
        yield Egress(proxy, echo_server, home, audits, denials)
    finally:
        await proxy.stop()


@pytest.fixture
async def backend(egress: Egress) -> AsyncIterator[LocalSandboxBackend]:
    backend = LocalSandboxBackend(Settings(home=egress.home))
    yield backend
    for info in await backend.list():
        await backend.stop(info.sandbox_id)


def new_sandbox_id() -> str:
    return f"sbx_{secrets.token_hex(8)}"


# -- signing and OAuth tests: one server for every name, answering as each test decides ----

AUTH = "auth.example.test"
AWS_EU = "sqs.eu-west-1.amazonaws.com"
AWS_US = "sqs.us-west-2.amazonaws.com"
S3_EU = "s3.eu-west-1.amazonaws.com"
SIGNING_NAMES = (API, OTHER, AUTH, AWS_EU, AWS_US, S3_EU)


@pytest.fixture
async def handler_server(test_ca: TestCA) -> AsyncIterator[HandlerServer]:
    server = HandlerServer(test_ca.server_context(SIGNING_NAMES))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def signing_egress(
    tmp_path: Path, test_ca: TestCA, handler_server: HandlerServer
) -> AsyncIterator[Egress]:
    """A real proxy whose overrides send every `SIGNING_NAMES` name to `handler_server`."""
    home = tmp_path / "home"
    target = f"127.0.0.1:{handler_server.port}"
    audits: list[AuditRecord] = []
    denials: list[tuple[str, str, str, str]] = []
    proxy = EgressProxy(
        EgressOptions(
            home=home,
            upstream_ca=test_ca.cert_path,
            resolve=dict.fromkeys(SIGNING_NAMES, target),
        ),
        on_audit=audits.append,
        on_denied=lambda *denial: denials.append(denial),
    )
    await proxy.start()
    try:
        yield Egress(proxy, handler_server, home, audits, denials)
    finally:
        await proxy.stop()
