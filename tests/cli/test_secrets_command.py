"""`chiron secrets|grants|roles|audit` against a real server: the value goes in through stdin or
a hidden prompt and never comes out again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from typer.testing import Result

from chiron.redaction import default_redactor
from chiron.store import credential_queries
from tests.cli.conftest import RunCli
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow

VALUE = "Cli-Real-Value-5d1e9f3a7b"
PROMPTED = "Prompted-Real-Value-2c8e6a4f"


@pytest.fixture(autouse=True)
def _forget_known_values() -> Iterator[None]:
    yield
    default_redactor.set_known_values([])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert VALUE not in result.output and PROMPTED not in result.output
    return result


async def test_secrets_grants_roles_and_audit(server: RunningServer, run_cli: RunCli) -> None:
    created = ok(
        await run_cli(
            "secrets",
            "set",
            "GITHUB_TOKEN",
            "--host",
            "api.github.com",
            "--value-stdin",
            input=VALUE + "\n",
        )
    )
    assert "created secret GITHUB_TOKEN (http, replace) for api.github.com" in created.stderr
    (secret,) = (await server.client.get("/api/secrets")).json()["secrets"]
    ok(
        await run_cli(
            "secrets",
            "set",
            "SLACK_BOT",
            "--host",
            "*.slack.com",
            "--mode",
            "inject",
            "--inject-header",
            "Authorization",
            "--format",
            "Bearer {value}",
            input=f"{PROMPTED}\n{PROMPTED}\n",
        )
    )
    listed = ok(await run_cli("secrets", "list")).stdout
    assert "GITHUB_TOKEN" in listed and "*.slack.com" in listed and secret["fingerprint"] in listed

    ok(await run_cli("roles", "set", "dev", "--description", "developers"))
    assigned = ok(await run_cli("roles", "assign", "dev", "--principal", "prn_cli"))
    assert "prn_cli now has roles: dev" in assigned.stderr
    granted = ok(
        await run_cli("grants", "add", "GITHUB_TOKEN", "--principal", "prn_cli", "--priority", "4")
    )
    assert "granted GITHUB_TOKEN to principal prn_cli (priority 4)" in granted.stderr
    ok(await run_cli("grants", "add", "SLACK_BOT", "--role", "dev"))
    grants = ok(await run_cli("grants", "list")).stdout
    assert "prn_cli" in grants and "role dev" in grants
    effective = ok(await run_cli("secrets", "effective", "prn_cli")).stdout
    assert '"GITHUB_TOKEN": "GITHUB_TOKEN"' in effective and '"hash"' in effective

    removed = ok(await run_cli("grants", "rm", "SLACK_BOT", "--role", "dev"))
    assert "removed grant of SLACK_BOT to role dev" in removed.stderr
    assert "had no grant" in ok(await run_cli("grants", "rm", "SLACK_BOT", "--role", "dev")).stderr
    gone = ok(await run_cli("secrets", "rm", "GITHUB_TOKEN"))
    assert "removed secret GITHUB_TOKEN and 1 grants" in gone.stderr
    missing = await run_cli("secrets", "rm", "GITHUB_TOKEN")
    assert missing.exit_code == 1 and "secret_not_found" in missing.stderr

    assert "no egress records" in ok(await run_cli("audit")).stderr
    async with server.plane.store.write() as conn:
        await credential_queries.insert_audit_record(
            conn,
            time=datetime.now(UTC),
            thread_key="cli:demo",
            host="api.github.com",
            method="GET",
            path="/user",
            status=200,
            secret_names=["GITHUB_TOKEN"],
        )
    audit = ok(await run_cli("audit", "--thread", "cli:demo", "--limit", "5")).stdout
    assert "GET api.github.com/user" in audit and "GITHUB_TOKEN" in audit
    assert "no egress records" in ok(await run_cli("audit", "--thread", "cli:other")).stderr


async def test_bad_input_is_refused_without_showing_the_value(run_cli: RunCli) -> None:
    catch_all = await run_cli(
        "secrets", "set", "TOKEN", "--host", "*", "--value-stdin", input=VALUE
    )
    assert catch_all.exit_code == 1 and "hosts[0]: '*' would allow every host" in catch_all.stderr
    no_hosts = await run_cli("secrets", "set", "TOKEN", "--value-stdin", input=VALUE)
    assert no_hosts.exit_code == 1 and "hosts: at least one host is required" in no_hosts.stderr
    lower = await run_cli(
        "secrets", "set", "token", "--host", "a.example.com", "--value-stdin", input=VALUE
    )
    assert lower.exit_code == 1 and "name: 'token' must match" in lower.stderr
    in_argv = await run_cli(
        "secrets", "set", "TOKEN", "--host", "a.example.com", "--option", f"value={VALUE}"
    )
    assert in_argv.exit_code == 1 and "never from options" in in_argv.stderr
    empty = await run_cli(
        "secrets", "set", "TOKEN", "--host", "a.example.com", "--value-stdin", input=""
    )
    assert empty.exit_code == 1 and "no value given" in empty.stderr
    neither = await run_cli("grants", "add", "TOKEN")
    assert neither.exit_code == 1 and "exactly one of --principal and --role" in neither.stderr
    for result in (catch_all, no_hosts, lower, in_argv, empty):
        assert VALUE not in result.output


async def test_aws_secret_through_options(run_cli: RunCli) -> None:
    result = ok(
        await run_cli(
            "secrets",
            "set",
            "AWS_PROD",
            "--type",
            "aws_auth",
            "--host",
            "s3.eu-west-1.amazonaws.com",
            "--option",
            "access_key_id=AKIAABCDEFGHIJKLMNOP",
            "--option",
            'regions=["eu-west-1"]',
            "--option",
            'services=["s3"]',
            "--value-stdin",
            input=VALUE,
        )
    )
    assert "created secret AWS_PROD (aws_auth)" in result.stderr


async def test_front_door_keys_may_not_touch_secrets(
    server: RunningServer, run_cli: RunCli
) -> None:
    created = await server.client.post(
        "/api/keys", json={"name": "bot", "thread_prefixes": ["slack:"]}
    )
    token = created.json()["token"]
    refused = await run_cli("secrets", "list", token=token)
    assert refused.exit_code == 1 and "may not do this" in refused.stderr
