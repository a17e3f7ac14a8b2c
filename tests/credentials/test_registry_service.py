"""The registry over a real store (both engines): values stay sealed, write-only and redacted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from chiron.credentials import (
    CredentialRegistry,
    ImplicitAccess,
    InvalidDeclaration,
    SecretBox,
    SecretsKeyError,
    UnknownName,
    load_known_values,
)
from chiron.redaction import Redactor
from chiron.settings import Settings
from chiron.store import credential_queries
from chiron.store.engine import Store

GITHUB_VALUE = "ghp_REAL-github-value-0123456789"
SLACK_VALUE = "xoxb-REAL-slack-value-0123456789"
ROTATED_VALUE = "ghp_ROTATED-github-value-987654"
AWS_VALUE = "aws/REAL+secret/access+key/0123456789"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def registry(store: Store, redactor: Redactor) -> CredentialRegistry:
    return CredentialRegistry(
        store, SecretBox(os.urandom(32)), base_allowlist=["pypi.org"], redactor=redactor
    )


async def _populate(registry: CredentialRegistry) -> None:
    await registry.put_secret(
        "GITHUB_TOKEN", {"type": "http", "value": GITHUB_VALUE, "hosts": ["api.github.com"]}
    )
    await registry.put_secret(
        "SLACK_BOT",
        {
            "type": "http",
            "value": SLACK_VALUE,
            "hosts": ["*.slack.com"],
            "inject_header": "Authorization",
            "inject_formatter": "Bearer {value}",
        },
    )
    await registry.put_secret(
        "AWS_PROD",
        {
            "type": "aws_auth",
            "secret_access_key": AWS_VALUE,
            "access_key_id": "AKIAABCDEFGHIJKLMNOP",
            "regions": ["eu-west-1"],
            "services": ["s3"],
            "hosts": ["s3.eu-west-1.amazonaws.com"],
        },
    )
    await registry.put_role("dev", "developers")
    await registry.assign_role("prn_1", "dev")
    await registry.add_grant("GITHUB_TOKEN", principal_id="prn_1", role=None, priority=1)
    await registry.add_grant("SLACK_BOT", principal_id=None, role="dev")
    await registry.add_grant("AWS_PROD", principal_id="prn_1", role=None)
    async with registry.store.write() as conn:
        await credential_queries.insert_audit_record(
            conn,
            thread_key="cli:a",
            principal_id="prn_1",
            host="api.github.com",
            method="GET",
            path="/user",
            status=200,
            secret_names=["GITHUB_TOKEN"],
        )


async def _every_cell(store: Store) -> list[tuple[str, object]]:
    """Every value of every row of every table in the database."""
    cells: list[tuple[str, object]] = []
    async with store.read() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert {"secrets", "grants", "egress_audit", "sessions"} <= set(names)
        for name in names:
            rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
            cells.extend((name, cell) for row in rows for cell in row)
    return cells


async def test_values_never_sit_in_any_table_in_plain_text(
    store: Store, registry: CredentialRegistry
) -> None:
    await _populate(registry)
    await registry.put_secret(
        "GITHUB_TOKEN", {"type": "http", "value": ROTATED_VALUE, "hosts": ["api.github.com"]}
    )
    cells = await _every_cell(store)
    assert any(table == "secrets" for table, _ in cells)
    for value in (GITHUB_VALUE, SLACK_VALUE, ROTATED_VALUE, AWS_VALUE):
        for table, cell in cells:
            text = cell if isinstance(cell, bytes) else str(cell).encode()
            assert value.encode() not in text, f"{table} holds a value in plain text"
    # ...yet they are all there, sealed.
    assert sorted(await registry.known_values()) == sorted([ROTATED_VALUE, SLACK_VALUE, AWS_VALUE])


async def test_summaries_and_configs_never_hold_values(registry: CredentialRegistry) -> None:
    await _populate(registry)
    summaries = await registry.list_secrets()
    assert [s.name for s in summaries] == ["AWS_PROD", "GITHUB_TOKEN", "SLACK_BOT"]
    github = summaries[1]
    assert github.fingerprint == registry.box.fingerprint(GITHUB_VALUE)
    assert (github.type, github.mode, github.hosts) == ("http", "replace", ("api.github.com",))
    config = await registry.effective("prn_1")
    shown = repr(summaries) + repr(config) + str(config.to_json())
    for value in (GITHUB_VALUE, SLACK_VALUE, AWS_VALUE):
        assert value not in shown
    assert config.values == {}
    assert config.allowed_hosts == (
        "*.slack.com",
        "api.github.com",
        "pypi.org",
        "s3.eu-west-1.amazonaws.com",
    )
    assert config.env == {
        "GITHUB_TOKEN": "GITHUB_TOKEN",
        "AWS_ACCESS_KEY_ID": "AWS_PROD",
        "AWS_SECRET_ACCESS_KEY": "AWS_PROD",
    }
    for_proxy = await registry.effective("prn_1", with_values=True)
    assert for_proxy.hash == config.hash
    assert dict(for_proxy.values) == {
        "GITHUB_TOKEN": GITHUB_VALUE,
        "SLACK_BOT": SLACK_VALUE,
        "AWS_PROD": AWS_VALUE,
    }
    assert (await registry.effective("prn_nobody")).allowed_hosts == ("pypi.org",)


async def test_every_change_registers_values_with_the_redactor(
    registry: CredentialRegistry, redactor: Redactor
) -> None:
    await _populate(registry)
    line = f"token={GITHUB_VALUE} slack={SLACK_VALUE} aws={AWS_VALUE}"
    assert all(v not in redactor.redact(line) for v in (GITHUB_VALUE, SLACK_VALUE, AWS_VALUE))
    await registry.put_secret(
        "GITHUB_TOKEN", {"type": "http", "value": ROTATED_VALUE, "hosts": ["api.github.com"]}
    )
    await registry.delete_secret("SLACK_BOT")
    # A rotated or deleted value stays sensitive: it is still hidden.
    assert redactor.redact(line + ROTATED_VALUE).count("[REDACTED]") == 4


async def test_replacing_without_a_value_keeps_it_and_the_grants(
    registry: CredentialRegistry,
) -> None:
    await _populate(registry)
    before = (await registry.list_secrets())[1]
    summary, created = await registry.put_secret(
        "GITHUB_TOKEN", {"type": "http", "hosts": ["api.github.com", "uploads.github.com"]}
    )
    assert not created and summary.fingerprint == before.fingerprint
    assert summary.hosts == ("api.github.com", "uploads.github.com")
    assert len(await registry.list_grants(secret="GITHUB_TOKEN")) == 1
    config = await registry.effective("prn_1", with_values=True)
    assert config.values["GITHUB_TOKEN"] == GITHUB_VALUE
    with pytest.raises(InvalidDeclaration) as caught:
        await registry.put_secret("NEW_TOKEN", {"type": "http", "hosts": ["a.example.com"]})
    assert caught.value.field == "value"
    # The kept value is checked against the new declaration too.
    with pytest.raises(InvalidDeclaration) as caught:
        await registry.put_secret(
            "GITHUB_TOKEN",
            {"type": "http", "hosts": ["api.github.com"], "placeholder": GITHUB_VALUE},
        )
    assert caught.value.field == "placeholder" and GITHUB_VALUE not in str(caught.value)


async def test_unknown_names_and_bad_grants(registry: CredentialRegistry) -> None:
    await _populate(registry)
    with pytest.raises(UnknownName, match="no secret named 'MISSING'"):
        await registry.add_grant("MISSING", principal_id="prn_1", role=None)
    with pytest.raises(UnknownName) as caught:
        await registry.add_grant("GITHUB_TOKEN", principal_id=None, role="ops")
    assert caught.value.code == "role_not_found"
    with pytest.raises(UnknownName):
        await registry.assign_role("prn_1", "ops")
    with pytest.raises(UnknownName):
        await registry.delete_secret("MISSING")
    with pytest.raises(InvalidDeclaration, match="exactly one"):
        await registry.add_grant("GITHUB_TOKEN", principal_id="prn_1", role="dev")
    with pytest.raises(InvalidDeclaration, match="exactly one"):
        await registry.add_grant("GITHUB_TOKEN", principal_id=None, role=None)
    with pytest.raises(InvalidDeclaration) as bad:
        await registry.add_grant("GITHUB_TOKEN", principal_id="bad id", role=None)
    assert bad.value.field == "principal_id"
    assert await registry.remove_grant("GITHUB_TOKEN", principal_id="prn_1", role=None)
    assert not await registry.remove_grant("GITHUB_TOKEN", principal_id="prn_1", role=None)
    assert await registry.delete_secret("SLACK_BOT") == 1
    assert await registry.list_grants(role="dev") == []


async def test_start_up_loads_the_key_and_refuses_a_wrong_one(store: Store, tmp_path: Path) -> None:
    redactor = Redactor()
    settings = Settings(home=tmp_path / "home")
    registry = await load_known_values(store, settings, redactor=redactor)
    assert (tmp_path / "home" / "secrets.key").exists()
    await registry.put_secret(
        "GITHUB_TOKEN", {"type": "http", "value": GITHUB_VALUE, "hosts": ["api.github.com"]}
    )
    later = Redactor()
    await load_known_values(store, settings, redactor=later)
    assert later.redact(GITHUB_VALUE) == "[REDACTED]"
    (tmp_path / "home" / "secrets.key").unlink()
    with pytest.raises(SecretsKeyError, match="secret GITHUB_TOKEN was encrypted with key"):
        await load_known_values(store, settings, redactor=Redactor())


async def test_implicit_access_adds_hosts_and_existing_secrets_below_every_grant(
    registry: CredentialRegistry,
) -> None:
    implicit = ImplicitAccess(
        hosts=("api.model.test",),
        secrets=("OPENAI_API_KEY", "ANTHROPIC_API_KEY"),
        hosts_with_secret={"ANTHROPIC_API_KEY": "api.anthropic.com"},
    )
    # No key stored yet: the model host is reachable, nothing is injected, and the other
    # provider's host stays closed.
    bare = await registry.effective("prn_model", implicit=implicit)
    assert "api.model.test" in bare.allowed_hosts
    assert "api.anthropic.com" not in bare.allowed_hosts
    assert bare.secrets == ()

    await registry.put_secret(
        "OPENAI_API_KEY",
        {"type": "http", "value": "sk-model-0123456789", "hosts": ["api.model.test"]},
    )
    config = await registry.effective("prn_model", implicit=implicit, with_values=True)
    assert [(g.spec.name, g.priority) for g in config.secrets] == [("OPENAI_API_KEY", -1_000_001)]
    assert config.env["OPENAI_API_KEY"] == "OPENAI_API_KEY"
    assert config.values["OPENAI_API_KEY"] == "sk-model-0123456789"
    assert "api.anthropic.com" not in config.allowed_hosts

    # A principal's own grant of the key wins over the implicit one.
    await registry.add_grant("OPENAI_API_KEY", principal_id="prn_model", role=None, priority=5)
    granted = await registry.effective("prn_model", implicit=implicit)
    assert [(g.spec.name, g.priority) for g in granted.secrets] == [("OPENAI_API_KEY", 5)]
    # Without implicit access (another harness), only real grants count.
    other = await registry.effective("prn_other")
    assert other.secrets == () and "api.model.test" not in other.allowed_hosts
