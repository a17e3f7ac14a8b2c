"""HMAC request signing (`hmac_sign` secrets): what is signed, exactly, and how it is shown.

For a matching request the proxy first sets `X-Signature-Timestamp` to the current Unix time
in whole seconds (replacing whatever the sandbox sent), then signs these bytes with the
secret's value (UTF-8) as the key and the declared algorithm (SHA-1, SHA-256 or SHA-512):

    <timestamp> "\\n" <METHOD> "\\n" <host> "\\n" <path?query> "\\n" <body>

- `<timestamp>`: the value of `X-Signature-Timestamp`, e.g. `1764185000`;
- `<METHOD>`: the request method in upper case, e.g. `POST`;
- `<host>`: the host the request goes to, lower case, without port (e.g. `api.example.com`);
- `<path?query>`: the request target exactly as sent upstream (after any placeholder swap),
  path and query string, e.g. `/v1/orders?id=7`;
- `<body>`: the body bytes exactly as sent upstream (still content-encoded, if they are),
  nothing for an empty body.

The digest is written as lower-case hex or standard base64 (with padding) and set into the
declared header through the declared formatter, e.g. `sha256={signature}`. A verifier
recomputes the same bytes and compares in constant time; it should also reject timestamps
too far from its own clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from mitmproxy import http

from chiron.egress.secret_methods import HmacAlgorithm, SignatureEncoding

TIMESTAMP_HEADER = "x-signature-timestamp"


def string_to_sign(timestamp: str, method: str, host: str, target: str, body: bytes) -> bytes:
    head = f"{timestamp}\n{method.upper()}\n{host.lower()}\n{target}\n"
    return head.encode() + body


def signature(
    key: str, message: bytes, algorithm: HmacAlgorithm, encoding: SignatureEncoding
) -> str:
    digest = hmac.new(key.encode(), message, getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def sign_request(
    request: http.Request,
    host: str,
    *,
    key: str,
    header: str,
    formatter: str,
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
) -> None:
    """Set the timestamp and signature headers on `request` (its body must be complete)."""
    timestamp = str(int(time.time()))
    request.headers[TIMESTAMP_HEADER] = timestamp
    message = string_to_sign(
        timestamp, request.method, host, request.path, request.raw_content or b""
    )
    rendered = formatter.replace("{signature}", signature(key, message, algorithm, encoding))
    request.headers[header] = rendered
