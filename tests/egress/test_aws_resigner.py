"""AWS SigV4 re-signing at the edge: the sandbox signs with placeholder keys; a loopback
server that checks SigV4 with the real key (botocore recomputing the signature) accepts what
the proxy sends; a region or service the secret does not allow is refused with 403."""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chiron.egress import AwsSign, ProxyConfig, SecretRule
from chiron.egress.aws_resigner import SigV4Scope, parse_authorization
from tests.egress.conftest import AWS_EU, AWS_US, S3_EU, Egress, new_sandbox_id
from tests.egress.handler_server import Answer, echo
from tests.egress.proxy_clients import proxied_client
from tests.egress.tls_servers import Received

REAL_ID = "AKIAREALKEY0000EXAMPLE"
REAL_SECRET = "real/Secret+Key0123456789abcdefghijklmnop"
PLACEHOLDER_ID = "AKIAPLACEHOLDER00000"
PLACEHOLDER_SECRET = "AWS_PROD"
NAME = "AWS_PROD"


def verify_sigv4(received: Received) -> Answer:
    """A server's SigV4 check, with the real key: recompute the signature with botocore."""
    scope = parse_authorization(received.header("authorization"))
    if scope is None:
        return echo(received, 403)
    credential = (received.header("authorization") or "").split("Credential=")[1].split("/")[0]
    request = AWSRequest(
        method=received.method,
        url=f"https://{received.header('host')}{received.target}",
        data=received.body,
    )
    for name in scope.signed_headers:
        for key, value in received.headers:
            if key.lower() == name:
                request.headers[name] = value
    amz_date = received.header("x-amz-date") or ""
    request.context["timestamp"] = amz_date
    signer_class = S3SigV4Auth if scope.service == "s3" else SigV4Auth
    signer = signer_class(Credentials(REAL_ID, REAL_SECRET), scope.service, scope.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    given = (received.header("authorization") or "").rsplit("Signature=", 1)[-1]
    ok = credential == REAL_ID and hmac.compare_digest(expected, given)
    return echo(received, 200 if ok else 403)


def signed_in_sandbox(
    method: str, url: str, body: bytes, region: str, service: str
) -> dict[str, str]:
    """What an SDK inside the sandbox sends: signed with the placeholder keys."""
    headers = {"host": urlsplit(url).hostname or "", "content-type": "application/x-amz-json-1.0"}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    signer_class(Credentials(PLACEHOLDER_ID, PLACEHOLDER_SECRET), service, region).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


async def aws_listener(egress: Egress) -> Path:
    rule = SecretRule(
        name=NAME,
        value=REAL_SECRET,
        hosts=(AWS_EU, AWS_US, S3_EU),
        aws=AwsSign(REAL_ID, regions=("eu-west-1",), services=("s3", "sqs")),
    )
    sandbox_id = new_sandbox_id()
    socket_path = await egress.proxy.open_listener(sandbox_id)
    await egress.proxy.load(sandbox_id, ProxyConfig.from_secrets("prn_aws", [rule]))
    return socket_path


async def send(
    client: httpx.AsyncClient, method: str, url: str, body: bytes, region: str, service: str
) -> httpx.Response:
    headers = signed_in_sandbox(method, url, body, region, service)
    return await client.request(method, url, content=body, headers=headers)


@pytest.mark.parametrize(
    ("method", "url", "service"),
    [
        ("POST", f"https://{AWS_EU}/?Action=SendMessage&b=%2Fx", "sqs"),
        ("PUT", f"https://{S3_EU}/bucket/a%20key/with~chars.txt?x-id=PutObject", "s3"),
    ],
    ids=["sqs", "s3"],
)
async def test_placeholder_signature_is_resigned_with_the_real_key(
    signing_egress: Egress, method: str, url: str, service: str
) -> None:
    egress = signing_egress
    egress.server.handler = verify_sigv4  # type: ignore[attr-defined]
    socket_path = await aws_listener(egress)
    body = b'{"QueueUrl": "q", "MessageBody": "hello"}'
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await send(client, method, url, body, "eu-west-1", service)
    assert response.status_code == 200, response.text
    (received,) = egress.server.received
    assert received.body == body
    assert f"Credential={REAL_ID}/" in (received.header("authorization") or "")
    assert PLACEHOLDER_ID not in (received.header("authorization") or "")
    assert REAL_SECRET not in repr(egress.server.received) + response.text
    assert [r.secrets for r in egress.audits] == [(NAME,)]


@pytest.mark.parametrize(
    ("url", "region", "service", "rule"),
    [
        (f"https://{AWS_US}/", "us-west-2", "sqs", "aws-region-not-allowed"),
        # An allowed region in the scope does not cover a host in another region.
        (f"https://{AWS_US}/", "eu-west-1", "sqs", "aws-region-not-allowed"),
        (f"https://{AWS_EU}/", "eu-west-1", "sns", "aws-service-not-allowed"),
    ],
    ids=["region", "host-region", "service"],
)
async def test_disallowed_region_or_service_is_refused(
    signing_egress: Egress, url: str, region: str, service: str, rule: str
) -> None:
    egress = signing_egress
    egress.server.handler = verify_sigv4  # type: ignore[attr-defined]
    socket_path = await aws_listener(egress)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await send(client, "POST", url, b"{}", region, service)
    assert response.status_code == 403
    assert response.headers["x-chiron-egress-denied"] == rule
    assert egress.server.received == []
    await egress.wait_for(lambda: bool(egress.denials))
    assert [d[1:] for d in egress.denials] == [(urlsplit(url).hostname, "POST", rule)]


async def test_unsigned_requests_pass_unchanged(signing_egress: Egress) -> None:
    egress = signing_egress
    socket_path = await aws_listener(egress)
    async with proxied_client(socket_path, egress.proxy.ca_cert_path) as client:
        response = await client.get(
            f"https://{AWS_EU}/?Action=List", headers={"authorization": "Bearer x"}
        )
    assert response.status_code == 200
    assert egress.server.received[0].header("authorization") == "Bearer x"
    assert [r.secrets for r in egress.audits] == [()]


def test_parse_authorization() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIAX/20260101/eu-west-1/sqs/aws4_request, "
        "SignedHeaders=Host;X-Amz-Date, Signature=abc123"
    )
    assert parse_authorization(header) == SigV4Scope("eu-west-1", "sqs", ("host", "x-amz-date"))
    assert parse_authorization("Bearer x") is None
    assert parse_authorization("AWS4-HMAC-SHA256 Credential=AKIAX/2026/eu/sqs/x") is None
