"""Short-lived tokens for `brokered_token` secrets, fetched by the control plane.

The stored value of a brokered secret is the credential the control plane presents to the
secret's `broker_url`: `POST <broker_url>` with `Authorization: Bearer <value>`, answered by
JSON `{"token" | "access_token": "…", "expires_in"?: seconds}`. The token — never the stored
credential — is what proxies apply. Tokens live in memory only, are redacted everywhere like
stored values, and are fetched again every `refresh_seconds` (or sooner if they expire), after
which every proxy listener reloads.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from chiron.credentials.secret_spec import Broker
from chiron.redaction import Redactor

logger = logging.getLogger(__name__)

_CHECK_EVERY_S = 5.0
_EXPIRY_MARGIN_S = 30.0


class BrokerError(Exception):
    """The broker did not hand out a token; the message carries no credential."""


@dataclass
class _Token:
    value: str
    due_at: float  # monotonic time at which to fetch again


class BrokeredTokens:
    def __init__(
        self,
        redactor: Redactor,
        *,
        upstream_ca: Path | None = None,
        resolve: dict[str, str] | None = None,
    ) -> None:
        self._redactor = redactor
        self._resolve = dict(resolve or {})
        context = ssl.create_default_context()
        if upstream_ca is not None:
            context.load_verify_locations(cafile=str(upstream_ca))
        self._client = httpx.AsyncClient(verify=context, timeout=15.0)
        self._tokens: dict[str, _Token] = {}
        self._brokers: dict[str, tuple[Broker, str]] = {}
        self._lock = asyncio.Lock()

    async def token_for(self, name: str, broker: Broker, credential: str) -> str:
        """The current token of secret `name`, fetched now if there is none yet."""
        async with self._lock:
            self._brokers[name] = (broker, credential)
            token = self._tokens.get(name)
            if token is None:
                token = self._tokens[name] = await self._fetch(name, broker, credential)
            return token.value

    async def refresh_due(self) -> bool:
        """Fetch every token that is due; True when any changed."""
        changed = False
        async with self._lock:
            now = time.monotonic()
            for name, (broker, credential) in list(self._brokers.items()):
                token = self._tokens.get(name)
                if token is not None and token.due_at > now:
                    continue
                try:
                    fresh = await self._fetch(name, broker, credential)
                except BrokerError as error:
                    logger.warning("brokered token refresh failed: %s", error)
                    continue
                changed = changed or token is None or fresh.value != token.value
                self._tokens[name] = fresh
        return changed

    async def run(self, on_change: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(_CHECK_EVERY_S)
            if await self.refresh_due():
                await on_change()

    async def close(self) -> None:
        await self._client.aclose()

    async def _fetch(self, name: str, broker: Broker, credential: str) -> _Token:
        url, extensions, headers = self._route(broker.url)
        headers["Authorization"] = f"Bearer {credential}"
        try:
            response = await self._client.post(url, headers=headers, extensions=extensions)
        except httpx.HTTPError as error:
            raise BrokerError(f"{name}: broker unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            raise BrokerError(f"{name}: broker answered {response.status_code}")
        try:
            document = response.json()
            token = document.get("token") or document.get("access_token")
            expires_in = float(document.get("expires_in") or broker.refresh_seconds)
        except (ValueError, AttributeError, TypeError):
            raise BrokerError(f"{name}: broker answer is not the expected JSON") from None
        if not isinstance(token, str) or len(token) < 8:
            raise BrokerError(f"{name}: broker answer holds no usable token")
        self._redactor.add_known_values([token])
        wait = min(broker.refresh_seconds, max(1.0, expires_in - _EXPIRY_MARGIN_S))
        return _Token(token, time.monotonic() + wait)

    def _route(self, url: str) -> tuple[str, dict[str, object], dict[str, str]]:
        """Apply a CHIRON_EGRESS_RESOLVE override: connect there, keep the name for TLS."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        target = self._resolve.get(host)
        if target is None:
            return url, {}, {}
        rewritten = urlunsplit(parts._replace(netloc=target))
        return rewritten, {"sni_hostname": host}, {"Host": host}
