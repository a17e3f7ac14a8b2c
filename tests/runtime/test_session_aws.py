"""AWS through the whole control plane: code in a session's sandbox signs a SigV4 request
with the stand-in keys it was given, and the egress proxy re-signs it with the real key so a
server checking SigV4 with botocore accepts it; a region the secret does not allow is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.egress.conftest import AWS_EU, AWS_US
from tests.egress.handler_server import HandlerServer
from tests.egress.test_aws_resigner import REAL_ID, REAL_SECRET, verify_sigv4
from tests.egress.tls_servers import TestCA
from tests.helpers import create_session, execute, output_deltas, wait_terminal

pytestmark = pytest.mark.slow

# Stdlib-only SigV4, as any SDK inside the sandbox would do with the keys in its environment.
SIGN_AND_SEND = r"""
import datetime, hashlib, hmac, os, sys, urllib.error, urllib.request
host, region = sys.argv[1], sys.argv[2]
body = b"Action=SendMessage&MessageBody=hello"
now = datetime.datetime.now(datetime.timezone.utc)
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload_hash = hashlib.sha256(body).hexdigest()
canonical = "\n".join(["POST", "/", "", f"host:{host}", f"x-amz-date:{amz_date}", "",
                       "host;x-amz-date", payload_hash])
scope = f"{day}/{region}/sqs/aws4_request"
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
for part in (day, region, "sqs", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
auth = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")
request = urllib.request.Request(f"https://{host}/", data=body, method="POST",
                                 headers={"x-amz-date": amz_date, "Authorization": auth})
try:
    print(region, urllib.request.urlopen(request, timeout=20).status)
except urllib.error.HTTPError as error:
    print(region, error.code)
except urllib.error.URLError as error:
    print(region, "refused", type(error.reason).__name__)
"""


@pytest.fixture
async def aws_server(tmp_path: Path) -> AsyncIterator[tuple[HandlerServer, TestCA]]:
    ca = TestCA(tmp_path / "upstream-ca")
    server = HandlerServer(ca.server_context([AWS_EU, AWS_US]))
    server.handler = verify_sigv4  # type: ignore[assignment]
    await server.start()
    yield server, ca
    await server.stop()


async def test_sandbox_signs_with_stand_ins_and_the_edge_re_signs(
    server_factory: Any, aws_server: tuple[HandlerServer, TestCA]
) -> None:
    handler, ca = aws_server
    target = f"127.0.0.1:{handler.port}"
    server: RunningServer = await server_factory(
        egress_upstream_ca=ca.cert_path, egress_resolve={AWS_EU: target, AWS_US: target}
    )
    client = server.client
    session = (await create_session(client, "api:aws"))["session"]
    secret = {
        "type": "aws_auth",
        "value": REAL_SECRET,
        "access_key_id": REAL_ID,
        "hosts": [AWS_EU, AWS_US],
        "regions": ["eu-west-1"],
        "services": ["sqs"],
    }
    answer = await client.put("/api/secrets/AWS_PROD", json=secret)
    assert answer.status_code == 200, answer.text
    grant = {"secret": "AWS_PROD", "principal_id": session["principal_id"]}
    assert (await client.post("/api/grants", json=grant)).status_code == 200

    command = (
        f"cat > sign.py <<'EOF'\n{SIGN_AND_SEND}\nEOF\n"
        f"python3 sign.py {AWS_EU} eu-west-1; python3 sign.py {AWS_US} us-west-2; "
        'echo "keys:$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
    )
    execution_id = await execute(client, "api:aws", command)
    events = await wait_terminal(client, "api:aws", execution_id, timeout=90)
    output = output_deltas(events)
    assert "eu-west-1 200" in output, output
    assert "us-west-2 403" in output, output
    assert "keys:AWS_PROD:AWS_PROD" in output
    (accepted,) = [r for r in handler.received if r.header("host") == AWS_EU]
    assert f"Credential={REAL_ID}/" in (accepted.header("authorization") or "")
    assert REAL_SECRET not in "\n".join(output)
