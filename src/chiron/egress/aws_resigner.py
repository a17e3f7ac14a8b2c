"""AWS SigV4 re-signing (`aws_auth` secrets): a request the sandbox signed with placeholder
keys leaves the proxy signed with the real ones, for allowed regions and services only.

The sandbox holds a placeholder access key id and secret key and signs as usual (any SDK).
For a matching request whose `Authorization` is `AWS4-HMAC-SHA256 Credential=<id>/<date>/
<region>/<service>/aws4_request, SignedHeaders=…, Signature=…`:

- the region and service come from that credential scope; both must be among the secret's
  `regions` and `services`, and every label of the host shaped like a region (as in
  `sqs.eu-west-1.amazonaws.com`) must be an allowed region too. Otherwise `AwsRefused`;
- the request is signed again with botocore (`S3SigV4Auth` for `s3`, else `SigV4Auth`) as the
  real access key id and secret key, now, over the headers the sandbox signed plus every
  `x-amz-*` header and `host`, the request target and the body as they go upstream;
  `Authorization`, `X-Amz-Date` (or `Date`) and `X-Amz-Content-SHA256` are replaced with the
  results, and any `X-Amz-Security-Token` is dropped (session tokens are not supported).

Requests without such a header (unsigned, or presigned in the query) are left as they are:
they carry no credential and fail upstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from mitmproxy import http

from chiron.egress.secret_methods import AwsSign

REGION_NOT_ALLOWED = "aws-region-not-allowed"
SERVICE_NOT_ALLOWED = "aws-service-not-allowed"

_SCHEME = "AWS4-HMAC-SHA256"
_CREDENTIAL = re.compile(r"^[^/\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request$")
_REGION_LABEL = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_SECURITY_TOKEN = "x-amz-security-token"
# What signing sets; copied back onto the request (or removed when signing did not set it).
_SET_BY_SIGNING = ("authorization", "x-amz-date", "date", "x-amz-content-sha256")


class AwsRefused(Exception):
    """The request names a region or service the secret does not allow; `rule` says which."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@dataclass(frozen=True)
class SigV4Scope:
    region: str
    service: str
    signed_headers: tuple[str, ...]


def parse_authorization(value: str | None) -> SigV4Scope | None:
    """The credential scope and signed headers of a SigV4 `Authorization`, else None."""
    if value is None:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme != _SCHEME:
        return None
    parts = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts[key] = val.strip()
    match = _CREDENTIAL.match(parts.get("Credential", ""))
    signed = parts.get("SignedHeaders", "")
    if match is None or not signed:
        return None
    return SigV4Scope(match[1], match[2], tuple(h.lower() for h in signed.split(";") if h))


def resign(request: http.Request, host: str, method: AwsSign, secret_key: str) -> bool:
    """Re-sign `request` in place with the real key (its body must be complete).

    False: not a SigV4-signed request, left unchanged. `AwsRefused`: a region or service the
    secret does not allow; the request is left unchanged and must not go out.
    """
    scope = parse_authorization(request.headers.get("authorization"))
    if scope is None:
        return False
    host_regions = [label for label in host.split(".") if _REGION_LABEL.match(label)]
    if scope.region not in method.regions or any(r not in method.regions for r in host_regions):
        raise AwsRefused(REGION_NOT_ALLOWED)
    if scope.service not in method.services:
        raise AwsRefused(SERVICE_NOT_ALLOWED)

    names = {*scope.signed_headers, "host"}
    names |= {name.lower() for name in request.headers if name.lower().startswith("x-amz-")}
    names -= {"authorization", _SECURITY_TOKEN}
    aws = AWSRequest(
        method=request.method,
        url=f"https://{host}{request.path}",
        data=request.raw_content or b"",
    )
    for name in sorted(names):
        values = request.headers.get_all(name) or ([host] if name == "host" else [])
        for value in values:
            aws.headers[name] = value  # email.message semantics: adds one more value
    signer_class = S3SigV4Auth if scope.service == "s3" else SigV4Auth
    signer = signer_class(
        Credentials(method.access_key_id, secret_key), scope.service, scope.region
    )
    signer.add_auth(aws)

    request.headers.pop(_SECURITY_TOKEN, None)
    for name in _SET_BY_SIGNING:
        values = [str(v) for v in (aws.headers.get_all(name) or [])]
        if values:
            request.headers.set_all(name, values)
        elif name != "date":
            request.headers.pop(name, None)
    return True
