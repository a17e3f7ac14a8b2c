"""HMAC signing at the edge: a loopback server verifies the signature with the real key,
which only the proxy holds; the sandbox side (an httpx client through a listener) never
sends or sees it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from chiron.egress import HmacSign, ProxyConfig, SecretRule
from chiron.egress.hmac_signer import string_to_sign
from tests.egress.conftest import API, OTHER, Egress, new_sandbox_id
from tests.egress.handler_server import Answer, echo
from tests.egress.proxy_clients import proxied_client
from tests.egress.tls_servers import Received

KEY = "whsec-real-7c0ffee5b4d3a2910e8f"
NAME = "WEBHOOK_KEY"


def verifier(algorithm: str, encoding: str, prefix: str) -> object:
    """What the receiving service does, written out from the documented scheme."""

    def handle(received: Received) -> Answer:
        timestamp = received.header("x-signature-timestamp") or ""
        message = (
            f"{timestamp}\n{received.method}\n{API}\n{received.target}\n".encode() + received.body
        )
        digest = hmac.new(KEY.encode(), message, getattr(hashlib, algorithm)).digest()
        expected = prefix + (
            digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
        )
        given = received.header("x-signature") or ""
        fresh = abs(time.time() - int(timestamp or 0)) < 60
        ok = fresh and hmac.compare_digest(expected.encode(), given.encode())
        return echo(received, 200 if ok else 401)

    return handle


@pytest.mark.parametrize(
    ("algorithm", "encoding", "formatter", "prefix"),
    [("sha256", "hex", "sha256={signature}", "sha256="), ("sha512", "base64", "{signature}", "")],
)
async def test_the_service_verifies_the_signature_with_the_real_key(
    signing_egress: Egress, algorithm: str, encoding: str, formatter: str, prefix: str
) -> None:
    egress = signing_egress
    egress.server.handler = verifier(algorithm, encoding, prefix)  # type: ignore[attr-defined]
    method = HmacSign("X-Signature", algorithm, encoding, formatter)  # type: ignore[arg-type]
    rule = SecretRule(name=NAME, value=KEY, hosts=(API,), methods=("POST",), hmac=method)
    sandbox_id = new_sandbox_id()
    socket_path = await egress.proxy.open_listener(sandbox_id)
    await egress.proxy.load(
        sandbox_id, ProxyConfig.from_secrets("prn_h", [rule], allowed_hosts=[OTHER])
    )
    body = json.dumps({"order": 7, "note": "ünïcode"}).encode()
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        signed = await client.post(
            f"https://{API}/hooks/in?b=2&a=1",
            content=body,
            headers={"x-signature-timestamp": "1", "x-signature": "forged"},
        )
        unsigned_get = await client.get(f"https://{API}/hooks/in")
        elsewhere = await client.post(f"https://{OTHER}/hooks/in", content=body)
    assert signed.status_code == 200, signed.text
    # Only requests matching the secret's rules are signed.
    assert unsigned_get.status_code == 401
    assert elsewhere.status_code == 401
    at_api = egress.server.received[0]
    assert at_api.body == body and at_api.target == "/hooks/in?b=2&a=1"
    assert at_api.header("x-signature-timestamp") != "1"
    assert egress.server.received[2].header("x-signature") is None
    # The key itself never travels and never reaches the sandbox.
    assert all(KEY not in repr(r) for r in egress.server.received)
    assert KEY not in signed.text + unsigned_get.text + elsewhere.text
    assert [r.secrets for r in egress.audits] == [(NAME,), (), ()]
    assert KEY not in repr(egress.audits)


def test_string_to_sign_is_the_documented_layout() -> None:
    message = string_to_sign("1764185000", "post", "API.Example.com", "/v1/x?q=1", b"{}")
    assert message == b"1764185000\nPOST\napi.example.com\n/v1/x?q=1\n{}"
