"""The proxy end to end on the host: real mitmproxy, a real listener socket, a loopback HTTPS
server with its own CA, and httpx going through the listener (as socat does in a sandbox)."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from chiron.egress import (
    EgressOptions,
    EgressProxy,
    EgressProxyError,
    InjectAs,
    ProxyConfig,
    ReplaceIn,
    SecretRule,
)
from tests.egress.conftest import (
    API,
    OTHER,
    TOKEN_NAME,
    TOKEN_VALUE,
    UNLISTED,
    Egress,
    new_sandbox_id,
)
from tests.egress.proxy_clients import proxied_client, raw_exchange


def token_config(principal: str = "prn_a", **replace: object) -> ProxyConfig:
    where = ReplaceIn(TOKEN_NAME, **replace) if replace else ReplaceIn(TOKEN_NAME)  # type: ignore[arg-type]
    secret = SecretRule(name=TOKEN_NAME, value=TOKEN_VALUE, hosts=(API,), replace=where)
    return ProxyConfig.from_secrets(principal, [secret], allowed_hosts=[OTHER])


async def listener(
    egress: Egress, config: ProxyConfig | None = None
) -> tuple[str, os.PathLike[str]]:
    sandbox_id = new_sandbox_id()
    socket_path = await egress.proxy.open_listener(sandbox_id)
    if config is not None:
        await egress.proxy.load(sandbox_id, config)
    return sandbox_id, socket_path


def echoed(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    document: dict[str, object] = response.json()
    return document


async def test_refuses_with_503_until_a_config_is_loaded(egress: Egress) -> None:
    sandbox_id, socket_path = await listener(egress)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        with pytest.raises(httpx.ProxyError, match="503"):
            await client.get(f"https://{API}/echo")
        await egress.proxy.load(sandbox_id, token_config())
        assert (await client.get(f"https://{API}/echo")).status_code == 200
    assert egress.server.received and all(r.target == "/echo" for r in egress.server.received)


async def test_placeholder_becomes_the_value_only_for_the_secret_hosts(egress: Egress) -> None:
    sandbox_id, socket_path = await listener(egress, token_config())
    headers = {"authorization": f"Bearer {TOKEN_NAME}", "x-other": TOKEN_NAME}
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        to_api = echoed(await client.get(f"https://{API}/echo", headers=headers))
        to_other = echoed(await client.get(f"https://{OTHER}/echo", headers=headers))
    at_api, at_other = egress.server.received
    # The secret's host got the value, in the declared header only.
    assert at_api.header("authorization") == f"Bearer {TOKEN_VALUE}"
    assert at_api.header("x-other") == TOKEN_NAME
    assert at_api.sni == API
    # Another allowed host got the placeholder, unchanged.
    assert at_other.header("authorization") == f"Bearer {TOKEN_NAME}"
    # What the sandbox sees back is the placeholder, even where the server echoed the value.
    assert TOKEN_VALUE not in json.dumps(to_api) + json.dumps(to_other)
    assert ["authorization", f"Bearer {TOKEN_NAME}"] in to_api["headers"]  # type: ignore[operator]
    records = {(r.host, r.secrets) for r in egress.audits}
    assert records == {(API, (TOKEN_NAME,)), (OTHER, ())}
    assert all(r.sandbox_id == sandbox_id and r.principal_id == "prn_a" for r in egress.audits)
    assert TOKEN_VALUE not in repr(egress.audits)


async def test_echoed_value_is_scrubbed_from_headers_and_gzip_bodies(egress: Egress) -> None:
    _, socket_path = await listener(egress, token_config())
    headers = {"authorization": f"token {TOKEN_NAME}", "accept-encoding": "gzip, br, zstd"}
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.get(f"https://{API}/gzip-echo", headers=headers)
    assert response.status_code == 200
    assert response.headers["x-echo-authorization"] == f"token {TOKEN_NAME}"
    assert TOKEN_VALUE not in response.text and f"token {TOKEN_NAME}" in response.text
    # Upstream was asked only for codings the scrubber can read while streaming.
    assert egress.server.received[0].header("accept-encoding") == "gzip"
    assert egress.server.received[0].header("authorization") == f"token {TOKEN_VALUE}"
    assert gzip.decompress(gzip.compress(b"x")) == b"x"


@pytest.mark.parametrize(
    ("replace", "url", "body"),
    [
        (
            {"headers": (), "query": ("key",)},
            f"https://{API}/echo?key={TOKEN_NAME}&other={TOKEN_NAME}",
            None,
        ),
        ({"headers": (), "path": True}, f"https://{API}/echo/{TOKEN_NAME}?q={TOKEN_NAME}", None),
        ({"headers": (), "body": True}, f"https://{API}/echo", f'{{"token": "{TOKEN_NAME}"}}'),
    ],
    ids=["query", "path", "body"],
)
async def test_replace_only_in_the_declared_place(
    egress: Egress, replace: dict[str, object], url: str, body: str | None
) -> None:
    _, socket_path = await listener(egress, token_config(**replace))
    headers = {"authorization": f"Bearer {TOKEN_NAME}"}
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.post(url, headers=headers, content=body or "")
    assert TOKEN_VALUE not in response.text
    received = egress.server.received[0]
    assert received.header("authorization") == f"Bearer {TOKEN_NAME}"
    if "query" in replace:
        assert f"key={TOKEN_VALUE}" in received.target and f"other={TOKEN_NAME}" in received.target
    elif "path" in replace:
        assert received.target == f"/echo/{TOKEN_VALUE}?q={TOKEN_NAME}"
    else:
        assert received.body == f'{{"token": "{TOKEN_VALUE}"}}'.encode()


async def test_inject_sets_the_header_the_sandbox_never_sees(egress: Egress) -> None:
    secret = SecretRule(
        name="SLACK_BOT",
        value="xoxb-real-1234567890",
        hosts=("*.example.test",),
        methods=("POST",),
        paths=("/api/",),
        inject=InjectAs(header="Authorization", formatter="Bearer {value}"),
    )
    _, socket_path = await listener(egress, ProxyConfig.from_secrets("prn_a", [secret]))
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        posted = await client.post(f"https://{API}/api/chat", headers={"authorization": "x"})
        fetched = await client.get(f"https://{API}/api/chat")
        escaped = await client.post(f"https://{API}/api/../admin")
    assert "xoxb-real" not in posted.text + fetched.text + escaped.text
    sent = [r.header("authorization") for r in egress.server.received]
    # POST under /api/ only; a path that leaves /api/ through dot segments never matches.
    assert sent == ["Bearer xoxb-real-1234567890", None, None]
    assert [r.secrets for r in egress.audits] == [("SLACK_BOT",), (), ()]


async def test_hosts_outside_the_allowlist_get_403_and_a_denial(egress: Egress) -> None:
    sandbox_id, socket_path = await listener(egress, token_config())
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://{UNLISTED}/echo", headers={"authorization": TOKEN_NAME})
    await egress.wait_for(lambda: bool(egress.audits))
    assert egress.denials == [(sandbox_id, UNLISTED, "CONNECT", "host-not-allowed")]
    assert egress.audits[0].status == 403 and egress.audits[0].denied == "host-not-allowed"
    assert egress.server.received == []


@pytest.mark.parametrize(
    ("request_line", "rule"),
    [
        ("CONNECT 127.0.0.1:443", "ip-literal"),
        ("CONNECT 2130706433:443", "ip-literal"),
        ("CONNECT [::1]:443", "ip-literal"),
        (f"CONNECT {API}:8443", "port-not-allowed"),
        (f"GET http://{API}/echo", "plain-http"),
        (f"CONNECT {UNLISTED}:443", "host-not-allowed"),
    ],
    ids=["ipv4", "ipv4-integer", "ipv6", "port", "plain-http", "unlisted"],
)
async def test_destinations_refused_before_any_connection(
    egress: Egress, request_line: str, rule: str
) -> None:
    _, socket_path = await listener(egress, token_config())
    host = request_line.split()[1].removeprefix("http://").split("/")[0]
    request = f"{request_line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = await raw_exchange(socket_path, request.encode(), timeout=5)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert f"x-chiron-egress-denied: {rule}".encode() in answer.lower()
    assert egress.server.connections == 0


async def test_a_tunnel_cannot_be_used_for_another_host(egress: Egress) -> None:
    _, socket_path = await listener(egress, token_config())
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        # Through the tunnel to OTHER, but naming API in Host: refused, no value added.
        response = await client.get(
            f"https://{OTHER}/echo",
            headers={"host": API, "authorization": f"Bearer {TOKEN_NAME}"},
        )
    assert response.status_code == 403
    assert response.headers["x-chiron-egress-denied"] == "host-mismatch"
    assert egress.server.received == []


async def test_a_tunnel_carries_only_tls_http(egress: Egress) -> None:
    _, socket_path = await listener(egress, token_config())
    connect = f"CONNECT {API}:443 HTTP/1.1\r\nHost: {API}\r\n\r\n".encode()
    raw = b"\x00\x01not tls, not http " + TOKEN_NAME.encode() + b"\r\n\r\n"
    plain = (
        f"GET /echo HTTP/1.1\r\nHost: {API}\r\nAuthorization: {TOKEN_NAME}\r\n"
        "Connection: close\r\n\r\n"
    )
    for inside in (raw, plain.encode()):
        answer = await raw_exchange(socket_path, connect + inside)
        established, after = answer.split(b"\r\n\r\n", 1)
        assert established.startswith(b"HTTP/1.1 200")
        # Never passed through as raw bytes, never sent as plain HTTP: the proxy answers.
        assert after.startswith((b"HTTP/1.1 400", b"HTTP/1.1 403")), after[:100]
    assert egress.server.received == []


async def test_listeners_are_the_sandbox_identity(egress: Egress) -> None:
    other_value = "real-other-principal-9f8e7d"
    other = SecretRule(
        name=TOKEN_NAME, value=other_value, hosts=(API,), replace=ReplaceIn(TOKEN_NAME)
    )
    id_a, socket_a = await listener(egress, token_config("prn_a"))
    id_b, socket_b = await listener(egress, ProxyConfig.from_secrets("prn_b", [other]))
    headers = {"authorization": f"Bearer {TOKEN_NAME}"}
    async with proxied_client(socket_a, egress.proxy.ca_cert_path) as client:
        await client.get(f"https://{API}/echo", headers=headers)
    async with proxied_client(socket_b, egress.proxy.ca_cert_path) as client:
        await client.get(f"https://{API}/echo", headers=headers)
    assert [r.header("authorization") for r in egress.server.received] == [
        f"Bearer {TOKEN_VALUE}",
        f"Bearer {other_value}",
    ]
    assert [(r.sandbox_id, r.principal_id) for r in egress.audits] == [
        (id_a, "prn_a"),
        (id_b, "prn_b"),
    ]


async def test_repointing_applies_before_load_returns(egress: Egress) -> None:
    sandbox_id, socket_path = await listener(egress, token_config("prn_a"))
    second = "real-second-principal-0a1b2c"
    new = ProxyConfig.from_secrets(
        "prn_b",
        [SecretRule(name=TOKEN_NAME, value=second, hosts=(OTHER,), replace=ReplaceIn(TOKEN_NAME))],
    )
    headers = {"authorization": f"Bearer {TOKEN_NAME}"}
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        await client.get(f"https://{API}/echo", headers=headers)
        await egress.proxy.load(sandbox_id, new)
        assert await egress.proxy.loaded_hash(sandbox_id) == new.config_hash
        # Same keep-alive connection: API is no longer allowed, OTHER now gets the new value.
        refused = await client.get(f"https://{API}/echo", headers=headers)
        await client.get(f"https://{OTHER}/echo", headers=headers)
    assert refused.status_code == 403
    assert [r.header("authorization") for r in egress.server.received] == [
        f"Bearer {TOKEN_VALUE}",
        f"Bearer {second}",
    ]
    assert [r.principal_id for r in egress.audits] == ["prn_a", "prn_b", "prn_b"]


async def test_sse_streams_event_by_event_and_scrubs_split_values(egress: Egress) -> None:
    _, socket_path = await listener(egress, token_config())
    half = len(TOKEN_VALUE) // 2
    async with (
        proxied_client(socket_path, egress.proxy.ca_cert_path) as client,
        client.stream("GET", f"https://{API}/sse") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.aiter_lines()
        await egress.server.sse_chunks.put(b"data: first\n\n")
        assert await anext(lines) == "data: first"
        assert await anext(lines) == ""
        # A value split across two chunks, then an event that must not wait for more.
        await egress.server.sse_chunks.put(b"data: token=" + TOKEN_VALUE[:half].encode())
        await egress.server.sse_chunks.put(TOKEN_VALUE[half:].encode() + b" ok\n\n")
        assert await anext(lines) == f"data: token={TOKEN_NAME} ok"
        assert await anext(lines) == ""
        await egress.server.sse_chunks.put(b"data: last\n\n")
        assert await anext(lines) == "data: last"
        await egress.server.sse_chunks.put(None)
        rest = [line async for line in lines]
    assert set(rest) <= {""}


async def test_allowed_names_that_resolve_to_private_addresses_are_refused(
    egress: Egress,
) -> None:
    # The registry would never allow `localhost`; the proxy must still not connect to it:
    # without an override it resolves to 127.0.0.1, which is not a public address.
    config = ProxyConfig.from_secrets("prn_a", [], allowed_hosts=["localhost"])
    _, socket_path = await listener(egress, config)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        with pytest.raises(httpx.ProxyError, match="502"):
            await client.get("https://localhost/")
    assert egress.server.connections == 0


async def test_stop_keeps_listener_directories_for_a_restart(egress: Egress) -> None:
    sandbox_id, socket_path = await listener(egress, token_config())
    directory = egress.home / "egress" / sandbox_id
    assert stat.S_IMODE((egress.home / "egress").stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    await egress.proxy.stop()
    assert directory.is_dir() and not (directory / "proxy.sock").exists()
    with pytest.raises(EgressProxyError):
        await egress.proxy.open_listener(sandbox_id)
    await egress.proxy.start()
    assert await egress.proxy.open_listener(sandbox_id) == socket_path
    assert await egress.proxy.loaded_hash(sandbox_id) is None  # must be loaded again
    await egress.proxy.close_listener(sandbox_id)
    assert not directory.exists()


async def test_one_proxy_per_process(egress: Egress, tmp_path: Path) -> None:
    second = EgressProxy(EgressOptions(home=tmp_path / "second"))
    with pytest.raises(EgressProxyError, match="one per process"):
        await second.start()
    await second.stop()  # harmless
    assert await egress.proxy.open_listener(new_sandbox_id())  # the first still serves


async def test_large_bodies_stream_and_are_still_scrubbed(egress: Egress) -> None:
    _, socket_path = await listener(egress, token_config())
    body = (f"{TOKEN_NAME} " * 200_000).encode()  # 2.6 MB: streamed both ways
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.post(
            f"https://{API}/echo", headers={"authorization": f"Bearer {TOKEN_NAME}"}, content=body
        )
    received = egress.server.received[0]
    # The head was swapped before the streamed body left; the body (no body rule) was not.
    assert received.header("authorization") == f"Bearer {TOKEN_VALUE}"
    assert received.body == body
    # The echo (larger than the buffering limit) came back streamed, and scrubbed.
    assert len(response.content) > 2_000_000
    assert TOKEN_VALUE not in response.text
    assert ["authorization", f"Bearer {TOKEN_NAME}"] in response.json()["headers"]
    await egress.wait_for(lambda: bool(egress.audits))
    assert egress.audits[0].secrets == (TOKEN_NAME,)
