"""Access tokens minted for `oauth_token` secrets, cached until shortly before they expire.

One `OAuthTokens` per proxy, used on the proxy loop only. A token is cached per secret,
client and client secret (so a rotated secret mints afresh) and shared by every listener
holding that secret; it is used until `REFRESH_MARGIN` before its `expires_in` (30 s, or a
tenth of a short lifetime), then minted again. Concurrent requests wait for one mint. An
upstream 401 to a request carrying a token drops it (`forget`), so the next request mints.

Tokens live only here and in flows; the response scrubber hides every token minted recently
(`scrub_table`), so an echoing server shows the sandbox the secret's stand-in instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets as _random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chiron.egress.listener_policy import ListenerPolicy
from chiron.egress.secret_methods import OAuthClient
from chiron.egress.stream_scrubber import ScrubTable
from chiron.egress.token_endpoint import TokenEndpoint

MAX_REFRESH_MARGIN_S = 30.0
# Tokens per secret still scrubbed after they were replaced (a sandbox may echo an old one).
_REMEMBERED = 8
_MAX_TABLES = 64
# Cache keys hash the client secret under a per-process key: no value sits in a dict key.
_KEY_SALT = _random.token_bytes(32)


def refresh_after(expires_in: float) -> float:
    """Seconds a token minted now is used for."""
    return expires_in - min(MAX_REFRESH_MARGIN_S, expires_in / 10)


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    token: str | None = field(default=None, repr=False)
    valid_until: float = 0.0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=_REMEMBERED), repr=False)


class OAuthTokens:
    def __init__(
        self, endpoint: TokenEndpoint, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._endpoint = endpoint
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._tables: dict[tuple[str, int], ScrubTable] = {}
        self.mints = 0

    async def token(self, secret: str, client: OAuthClient, client_secret: str) -> str:
        """A valid token for the secret, minted when there is none (`TokenEndpointError`)."""
        entry = self._entries.setdefault(_key(secret, client, client_secret), _Entry())
        if entry.token is not None and self._clock() < entry.valid_until:
            return entry.token
        async with entry.lock:
            if entry.token is not None and self._clock() < entry.valid_until:
                return entry.token
            minted = await self._endpoint.mint(client, client_secret)
            self.mints += 1
            entry.token = minted.access_token
            entry.valid_until = self._clock() + refresh_after(minted.expires_in)
            if minted.access_token not in entry.recent:
                entry.recent.append(minted.access_token)
                self._generation += 1
            return minted.access_token

    def forget(self, secret: str, client: OAuthClient, client_secret: str, token: str) -> None:
        """Upstream refused `token`: mint a new one next time (it is still scrubbed)."""
        entry = self._entries.get(_key(secret, client, client_secret))
        if entry is not None and entry.token == token:
            entry.token = None

    def scrub_table(self, policy: ListenerPolicy) -> ScrubTable:
        """The listener's scrub table plus every token recently minted for its secrets."""
        config = policy.config
        pairs = [
            (token, config.stand_in(name))
            for name, method in config.methods.items()
            if isinstance(method, OAuthClient) and name in config.values
            for token in self._recent(name, method, config.values[name])
        ]
        if not pairs:
            return policy.scrub
        cache_key = (config.config_hash, self._generation)
        table = self._tables.get(cache_key)
        if table is None:
            if len(self._tables) >= _MAX_TABLES:
                self._tables.clear()
            table = ScrubTable([*config.stand_ins(), *pairs])
            self._tables[cache_key] = table
        return table

    def _recent(self, secret: str, client: OAuthClient, client_secret: str) -> list[str]:
        entry = self._entries.get(_key(secret, client, client_secret))
        return [] if entry is None else list(entry.recent)


def _key(secret: str, client: OAuthClient, client_secret: str) -> str:
    material = "\n".join(
        [secret, client.token_url, client.client_id, " ".join(client.scopes), client_secret]
    )
    return hashlib.blake2b(material.encode(), key=_KEY_SALT, digest_size=16).hexdigest()
