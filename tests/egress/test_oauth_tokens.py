"""OAuth client credentials at the edge: the proxy mints a token from a loopback token
endpoint, caches it until shortly before it expires, mints again after, and neither the
token nor the client secret ever reaches the sandbox side (an httpx client through a
listener), even when a server echoes the token back."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus

import pytest

from chiron.egress import InjectAs, OAuthClient, ProxyConfig, ReplaceIn, SecretRule
from chiron.egress.oauth_tokens import refresh_after
from chiron.egress.token_endpoint import TokenEndpoint, TokenEndpointError
from tests.egress.conftest import API, AUTH, OTHER, Egress, new_sandbox_id
from tests.egress.handler_server import Answer, HandlerServer, echo
from tests.egress.proxy_clients import proxied_client
from tests.egress.tls_servers import Received, TestCA

NAME = "CRM_API"
CLIENT_ID = "chiron client"
CLIENT_SECRET = "oauth-real-client-secret-93f1c2"
TOKEN_URL = f"https://{AUTH}/oauth/token"


class TokenService:
    """The token endpoint (on AUTH) and the API it guards (on API); OTHER leaks tokens."""

    def __init__(self, expires_in: int = 3600, token_status: int = 200) -> None:
        self.expires_in = expires_in
        self.token_status = token_status
        self.minted: list[str] = []
        self.revoked: set[str] = set()

    def __call__(self, received: Received) -> Answer:
        host = received.header("host")
        if host == AUTH:
            return self._token(received)
        if host == OTHER:  # a server that shows the sandbox every token it knows
            return 200, {"content-type": "text/plain"}, " ".join(self.minted).encode()
        token = (received.header("authorization") or "").removeprefix("Bearer ")
        ok = bool(self.minted) and token == self.minted[-1] and token not in self.revoked
        return echo(received, 200 if ok else 401)

    def _token(self, received: Received) -> Answer:
        scheme, _, encoded = (received.header("authorization") or "").partition(" ")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        form = dict(parse_qsl(received.body.decode()))
        good = (
            received.method == "POST"
            and received.target == "/oauth/token"
            and scheme == "Basic"
            and (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
            and form == {"grant_type": "client_credentials", "scope": "crm.read crm.write"}
        )
        if not good or self.token_status != 200:
            status = 401 if not good else self.token_status
            return status, {"content-type": "application/json"}, b'{"error": "nope"}'
        token = f"minted-{len(self.minted) + 1}-{secrets.token_hex(12)}"
        self.minted.append(token)
        document = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        return 200, {"content-type": "application/json"}, json.dumps(document).encode()


async def oauth_listener(egress: Egress, service: TokenService, *, replace: bool = False) -> Path:
    egress.server.handler = service  # type: ignore[attr-defined]
    rule = SecretRule(
        name=NAME,
        value=CLIENT_SECRET,
        hosts=(API,),
        replace=ReplaceIn("CRM_PLACEHOLDER") if replace else None,
        inject=None if replace else InjectAs(header="Authorization", formatter="Bearer {value}"),
        oauth=OAuthClient(TOKEN_URL, CLIENT_ID, ("crm.read", "crm.write")),
    )
    sandbox_id = new_sandbox_id()
    socket_path = await egress.proxy.open_listener(sandbox_id)
    config = ProxyConfig.from_secrets("prn_o", [rule], allowed_hosts=[OTHER])
    await egress.proxy.load(sandbox_id, config)
    return socket_path


async def test_token_is_minted_once_cached_and_minted_again_after_expiry(
    signing_egress: Egress,
) -> None:
    egress = signing_egress
    service = TokenService(expires_in=2)
    socket_path = await oauth_listener(egress, service)
    seen: list[str] = []
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        # Concurrent first requests wait for one mint; later ones use the cached token.
        first = await asyncio.gather(*(client.get(f"https://{API}/echo") for _ in range(4)))
        first.append(await client.get(f"https://{API}/echo"))
        assert [r.status_code for r in first] == [200] * 5
        assert len(service.minted) == 1
        leaked = await client.get(f"https://{OTHER}/leak")
        await asyncio.sleep(refresh_after(2) + 0.1)
        after = await client.get(f"https://{API}/echo")
        leaked_after = await client.get(f"https://{OTHER}/leak")
        seen = [r.text + json.dumps(dict(r.headers)) for r in [*first, leaked, after, leaked_after]]
    assert after.status_code == 200
    assert len(service.minted) == 2
    tokens_at_api = [
        r.header("authorization") for r in egress.server.received if r.header("host") == API
    ]
    assert tokens_at_api == [f"Bearer {service.minted[0]}"] * 5 + [f"Bearer {service.minted[1]}"]
    # The sandbox sees the secret's stand-in where a token or the client secret would be.
    assert ["authorization", f"Bearer {NAME}"] in first[0].json()["headers"]
    assert leaked.text == NAME and leaked_after.text == f"{NAME} {NAME}"
    for text in seen:
        assert CLIENT_SECRET not in text
        assert all(token not in text for token in service.minted)
    assert {r.secrets for r in egress.audits if r.host == API} == {(NAME,)}
    assert CLIENT_SECRET not in repr(egress.audits)


async def test_replace_mode_swaps_the_placeholder_for_the_token(signing_egress: Egress) -> None:
    egress = signing_egress
    service = TokenService()
    socket_path = await oauth_listener(egress, service, replace=True)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.get(
            f"https://{API}/echo", headers={"authorization": "Bearer CRM_PLACEHOLDER"}
        )
    assert response.status_code == 200
    assert egress.server.received[-1].header("authorization") == f"Bearer {service.minted[0]}"
    assert ["authorization", "Bearer CRM_PLACEHOLDER"] in response.json()["headers"]


async def test_a_revoked_token_is_dropped_after_a_401(signing_egress: Egress) -> None:
    egress = signing_egress
    service = TokenService()
    socket_path = await oauth_listener(egress, service)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        assert (await client.get(f"https://{API}/echo")).status_code == 200
        service.revoked.add(service.minted[0])
        assert (await client.get(f"https://{API}/echo")).status_code == 401
        assert (await client.get(f"https://{API}/echo")).status_code == 200
    assert len(service.minted) == 2


@pytest.mark.parametrize("token_status", [500, 400])
async def test_a_failing_token_endpoint_stops_the_request(
    signing_egress: Egress, token_status: int
) -> None:
    egress = signing_egress
    socket_path = await oauth_listener(egress, TokenService(token_status=token_status))
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.get(f"https://{API}/echo")
    assert response.status_code == 502
    assert "could not obtain an access token" in response.text
    assert [r.header("host") for r in egress.server.received] == [AUTH]


def test_refresh_margin() -> None:
    assert refresh_after(3600) == 3570
    assert refresh_after(2) == pytest.approx(1.8)


async def test_token_endpoint_tls_is_verified_with_the_upstream_trust(
    test_ca: TestCA, tmp_path: Path
) -> None:
    def token(received: Received) -> Answer:
        body = json.dumps({"access_token": "minted-direct-0123", "expires_in": 60}).encode()
        return 200, {"content-type": "application/json"}, body

    server = HandlerServer(test_ca.server_context(["127.0.0.1"]))
    server.handler = token
    await server.start()
    try:
        client = OAuthClient(f"https://127.0.0.1:{server.port}/token", CLIENT_ID)
        minted = await TokenEndpoint(test_ca.cert_path).mint(client, CLIENT_SECRET)
        assert (minted.access_token, minted.expires_in) == ("minted-direct-0123", 60.0)
        assert "minted-direct" not in repr(minted)
        stranger = TestCA(tmp_path / "stranger-ca")
        with pytest.raises(TokenEndpointError, match="unreachable") as caught:
            await TokenEndpoint(stranger.cert_path).mint(client, CLIENT_SECRET)
        assert CLIENT_SECRET not in str(caught.value)
    finally:
        await server.stop()
