"""The proxy's own HTTPS calls to OAuth token endpoints (client credentials grant).

They run on the proxy's loop and so resolve names as upstream connections do
(`PolicyEventLoop`: `CHIRON_EGRESS_RESOLVE` overrides, else public addresses only), and they
verify TLS with the same trust as upstream (system CAs plus `CHIRON_EGRESS_UPSTREAM_CA`),
the certificate checked against the URL's host. Built on httpcore (httpx's transport) with a
network backend that connects to the address *and port* the loop's resolver returned.

Errors never quote the endpoint's answer (it could hold a token or echo the secret).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import httpcore

from chiron.egress.secret_methods import OAuthClient

MAX_RESPONSE_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 8 * 1024
TIMEOUT_S = 10.0
# Used when the endpoint does not say how long its token lives.
DEFAULT_EXPIRES_IN_S = 300.0


class TokenEndpointError(Exception):
    """Minting failed; the message is safe to log (no token, no secret, no response body)."""


@dataclass(frozen=True)
class MintedToken:
    access_token: str
    expires_in: float

    def __repr__(self) -> str:
        return f"MintedToken(expires_in={self.expires_in})"


class _LoopResolvingBackend(httpcore.AsyncNetworkBackend):
    """Connects where the running loop's `getaddrinfo` says, port included."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for info in infos:
            address = info[4]
            try:
                return await self._inner.connect_tcp(
                    str(address[0]),
                    int(address[1]),
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("token endpoints are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class TokenEndpoint:
    """Mints tokens; `trust` is the upstream CA bundle (None: the system's)."""

    def __init__(self, trust: Path | None) -> None:
        self._trust = trust
        self._context: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            cafile = None if self._trust is None else str(self._trust)
            self._context = ssl.create_default_context(cafile=cafile)
        return self._context

    async def mint(self, client: OAuthClient, client_secret: str) -> MintedToken:
        # RFC 6749 §2.3.1: HTTP Basic with form-encoded id and secret.
        basic = f"{quote_plus(client.client_id)}:{quote_plus(client_secret)}"
        form = {"grant_type": "client_credentials"}
        if client.scopes:
            form["scope"] = " ".join(client.scopes)
        body = urlencode(form).encode()
        headers = [
            (b"authorization", b"Basic " + base64.b64encode(basic.encode())),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"accept", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        timeouts = {"connect": TIMEOUT_S, "read": TIMEOUT_S, "write": TIMEOUT_S, "pool": TIMEOUT_S}
        try:
            async with (
                httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl_context(),
                    network_backend=_LoopResolvingBackend(),
                    http2=False,
                    max_connections=1,
                ) as pool,
                pool.stream(
                    "POST",
                    client.token_url,
                    headers=headers,
                    content=body,
                    extensions={"timeout": timeouts},
                ) as response,
            ):
                status = response.status
                data = await _read_capped(response)
        except httpcore.TimeoutException:
            raise TokenEndpointError("the token endpoint timed out") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise TokenEndpointError(
                f"the token endpoint is unreachable: {type(exc).__name__}"
            ) from None
        if status != 200:
            raise TokenEndpointError(f"the token endpoint answered {status}")
        return _parse(data)


async def _read_capped(response: httpcore.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_stream():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise TokenEndpointError("the token endpoint's answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> MintedToken:
    try:
        document = json.loads(data)
    except ValueError:
        raise TokenEndpointError("the token endpoint's answer is not JSON") from None
    if not isinstance(document, dict):
        raise TokenEndpointError("the token endpoint's answer is not a JSON object")
    token = document.get("access_token")
    if (
        not isinstance(token, str)
        or not token
        or len(token) > MAX_TOKEN_CHARS
        or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in token)
    ):
        raise TokenEndpointError("the token endpoint gave no usable access_token")
    token_type = document.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenEndpointError("the token endpoint gave a token that is not a bearer token")
    expires_in = document.get("expires_in", DEFAULT_EXPIRES_IN_S)
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        raise TokenEndpointError("the token endpoint gave an invalid expires_in")
    return MintedToken(token, float(expires_in))
