"""Addon: access tokens for `oauth_token` secrets, minted before the swap addon places them.

For a request that transforms of an OAuth secret apply to (host, method, path), the token is
fetched from `OAuthTokens` (cached, or minted on the proxy loop) into the flow's note; the
swap addon then puts it where the secret's replace or inject rule says. When minting fails
the request gets 502 and does not go out. An upstream 401 drops the token it carried.
Must run after the policy addon and before the swap addon.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from chiron.egress.flow_note import note_of
from chiron.egress.listener_policy import request_path
from chiron.egress.oauth_tokens import OAuthTokens
from chiron.egress.secret_methods import OAuthClient
from chiron.egress.token_endpoint import TokenEndpointError

logger = logging.getLogger(__name__)


class OAuthAddon:
    def __init__(self, tokens: OAuthTokens) -> None:
        self._tokens = tokens

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        note = note_of(flow)
        if note is None or note.policy is None or note.denied or flow.response is not None:
            return
        request = flow.request
        config = note.policy.config
        transforms = config.transforms_for(note.host, request.method, request_path(request.path))
        for name in dict.fromkeys(t.secret for t in transforms):
            client = config.methods.get(name)
            client_secret = config.values.get(name)
            if not isinstance(client, OAuthClient) or client_secret is None:
                continue
            try:
                note.tokens[name] = await self._tokens.token(name, client, client_secret)
            except TokenEndpointError as exc:
                logger.warning("egress: no access token for secret %s: %s", name, exc)
                flow.response = http.Response.make(
                    502,
                    f"egress proxy: could not obtain an access token for {name}\n".encode(),
                    {"content-type": "text/plain; charset=utf-8"},
                )
                return

    def response(self, flow: http.HTTPFlow) -> None:
        note = note_of(flow)
        if note is None or note.policy is None or flow.response is None:
            return
        if flow.response.status_code != 401 or not note.tokens:
            return
        config = note.policy.config
        for name, token in note.tokens.items():
            client = config.methods.get(name)
            client_secret = config.values.get(name)
            if isinstance(client, OAuthClient) and client_secret is not None:
                self._tokens.forget(name, client, client_secret, token)
