"""Addon: placeholders become values (replace) and values are set (inject).

Only for requests the policy let through, and only the transforms the listener's config has
for the request's host, method and path: a replace transform touches only its target (one
header, one query parameter, the path or the body) and only where the placeholder is. Every
other request, including one to a host outside a secret's rules, leaves the proxy exactly as
the sandbox sent it. For an OAuth secret the value placed is the access token the OAuth
addon minted for this request, never the client secret. Signing transforms (`hmac_sign`,
`aws_sigv4`) are the signing addon's.

A body is swapped only when mitmproxy buffered it (up to 1 MiB): a larger, streamed request
body goes out as sent. When the listener holds values, `Accept-Encoding` is narrowed to
codings the response scrubber can read while streaming (gzip, deflate).
"""

from __future__ import annotations

from urllib.parse import quote

from mitmproxy import http

from chiron.egress.flow_note import note_of
from chiron.egress.listener_policy import request_path
from chiron.egress.proxy_config import INJECT, REPLACE
from chiron.egress.secret_methods import OAuthClient

STREAMABLE_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})
# Characters RFC 3986 allows in a path segment unescaped.
_PATH_SAFE = "-._~!$&'()*+,;=:@"


class SwapAddon:
    """Headers, query and path in `requestheaders` (a streamed request's head leaves right
    after it); the body in `request`, once it is complete."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._apply(flow, body=False)
        note = note_of(flow)
        if note is not None and note.policy is not None and note.policy.scrub:
            _narrow_accept_encoding(flow.request)

    def request(self, flow: http.HTTPFlow) -> None:
        if not flow.request.stream:
            self._apply(flow, body=True)
        note = note_of(flow)
        if note is not None:
            note.request_bytes = len(flow.request.raw_content or b"")

    @staticmethod
    def _apply(flow: http.HTTPFlow, *, body: bool) -> None:
        note = note_of(flow)
        if note is None or note.policy is None or note.denied or flow.response is not None:
            return
        request = flow.request
        config = note.policy.config
        transforms = config.transforms_for(note.host, request.method, request_path(request.path))
        for transform in transforms:
            if isinstance(config.methods.get(transform.secret), OAuthClient):
                value = note.tokens.get(transform.secret)
            else:
                value = config.values.get(transform.secret)
            if value is None or (transform.target == "body") != body:
                continue
            if transform.kind == REPLACE and transform.placeholder:
                applied = _replace(request, transform.target, transform.placeholder, value)
            elif transform.kind == INJECT:
                rendered = (transform.formatter or "{value}").replace("{value}", value)
                applied = _set(request, transform.target, rendered)
            else:
                continue
            if applied and transform.secret not in note.applied:
                note.applied.append(transform.secret)


def _replace(request: http.Request, target: str, placeholder: str, value: str) -> bool:
    kind, _, name = target.partition(":")
    if kind == "header":
        values = request.headers.get_all(name)
        if any(placeholder in v for v in values):
            request.headers.set_all(name, [v.replace(placeholder, value) for v in values])
            return True
    elif kind == "query":
        query = request.query
        values = query.get_all(name)
        if any(placeholder in v for v in values):
            query.set_all(name, [v.replace(placeholder, value) for v in values])
            return True
    elif kind == "path":
        path, sep, rest = request.path.partition("?")
        if placeholder in path:
            request.path = path.replace(placeholder, quote(value, safe=_PATH_SAFE)) + sep + rest
            return True
    elif kind == "body" and request.raw_content:
        content = request.get_content(strict=False) or b""
        needle = placeholder.encode()
        if needle in content:
            request.content = content.replace(needle, value.encode())
            return True
    return False


def _set(request: http.Request, target: str, rendered: str) -> bool:
    kind, _, name = target.partition(":")
    if kind == "header" and name:
        request.headers[name] = rendered
    elif kind == "query" and name:
        request.query[name] = rendered
    else:
        return False
    return True


def _narrow_accept_encoding(request: http.Request) -> None:
    offered = request.headers.get("accept-encoding")
    if offered is None:
        return
    kept = [
        token.strip()
        for token in offered.split(",")
        if token.split(";", 1)[0].strip().lower() in STREAMABLE_CODINGS
    ]
    if kept:
        request.headers["accept-encoding"] = ", ".join(kept)
    else:
        del request.headers["accept-encoding"]
