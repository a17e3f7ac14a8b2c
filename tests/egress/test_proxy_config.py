"""ProxyConfig: built from secrets or from the registry's effective config."""

from __future__ import annotations

import pytest

from chiron.credentials import Grant, effective_config, parse_declaration
from chiron.egress import (
    AwsSign,
    HmacSign,
    InjectAs,
    OAuthClient,
    ProxyConfig,
    ReplaceIn,
    SecretRule,
    Transform,
    proxy_config_from_effective,
)

VALUE = "real-value-123456789"


def test_from_secrets_expands_targets_and_wildcards() -> None:
    wildcard = SecretRule(
        name="SLACK",
        value="xoxb-real-123456",
        hosts=("*.slack.com",),
        methods=("POST",),
        inject=InjectAs(header="Authorization", formatter="Bearer {value}"),
    )
    exact = SecretRule(
        name="HOOK",
        value=VALUE,
        hosts=("hooks.slack.com",),
        paths=("/services/",),
        replace=ReplaceIn("HOOK_TOKEN", headers=("x-token",), query=("token",), path=True),
    )
    config = ProxyConfig.from_secrets("p", [wildcard, exact])
    assert sorted(config.hosts) == ["*.slack.com", "hooks.slack.com"]
    # The exact host's entry is complete: it includes the wildcard secret that covers it.
    assert {t.target for t in config.transforms_for("hooks.slack.com", "POST", "/services/a")} == {
        "header:authorization",
        "header:x-token",
        "query:token",
        "path",
    }
    assert config.transforms_for("api.slack.com", "GET", "/") == ()
    assert [t.secret for t in config.transforms_for("api.slack.com", "POST", "/")] == ["SLACK"]
    # An ambiguous path matches only transforms without path rules.
    assert [t.secret for t in config.transforms_for("hooks.slack.com", "POST", None)] == ["SLACK"]
    assert sorted(config.stand_ins()) == [(VALUE, "HOOK_TOKEN"), ("xoxb-real-123456", "SLACK")]


def test_values_stay_out_of_repr_but_change_the_hash() -> None:
    def config(value: str) -> ProxyConfig:
        rule = SecretRule(name="T", value=value, hosts=("a.example.com",), replace=ReplaceIn("T"))
        return ProxyConfig.from_secrets("p", [rule])

    first, same, rotated = config(VALUE), config(VALUE), config(VALUE + "x")
    assert VALUE not in repr(first) and VALUE not in repr(first.hosts)
    assert first.config_hash == same.config_hash != rotated.config_hash
    assert VALUE not in first.config_hash


def test_adapter_keeps_the_effective_config_one_to_one() -> None:
    specs = [
        parse_declaration(
            "GITHUB_TOKEN",
            {"type": "http", "value": VALUE, "hosts": ["api.github.com"], "paths": ["/repos/"]},
        ),
        parse_declaration(
            "OPENAI",
            {
                "type": "http",
                "value": "sk-real-abcdefghijk",
                "hosts": ["api.openai.com"],
                "mode": "inject",
                "inject_header": "Authorization",
                "inject_formatter": "Bearer {value}",
            },
        ),
    ]
    effective = effective_config(
        "prn_1",
        roles=["dev"],
        grants=[Grant("GITHUB_TOKEN", 1, role="dev"), Grant("OPENAI", 1, principal_id="prn_1")],
        secrets=[p.spec for p in specs],
        base_allowlist=["pypi.org"],
        values={p.spec.name: p.value for p in specs if p.value is not None},
    )
    config = proxy_config_from_effective(effective)
    assert config.principal_id == "prn_1" and config.source_hash == effective.hash
    assert set(config.allowed_hosts) == {"pypi.org", "api.github.com", "api.openai.com"}
    assert config.transforms_for("api.github.com", "GET", "/repos/x") == (
        Transform(
            "GITHUB_TOKEN",
            "replace",
            "header:authorization",
            (),
            ("/repos/",),
            placeholder="GITHUB_TOKEN",
        ),
    )
    assert config.transforms_for("api.github.com", "GET", "/user") == ()
    (inject,) = config.transforms_for("api.openai.com", "POST", "/v1/chat")
    assert (inject.kind, inject.formatter) == ("inject", "Bearer {value}")
    assert dict(config.values) == {"GITHUB_TOKEN": VALUE, "OPENAI": "sk-real-abcdefghijk"}
    assert VALUE not in repr(config)


def test_adapter_carries_how_signing_and_oauth_secrets_are_used() -> None:
    declarations = {
        "HOOK_KEY": {
            "type": "hmac_sign",
            "value": "hmac-real-key-0123456789",
            "hosts": ["hooks.example.com"],
            "signature_header": "X-Sig",
            "algorithm": "sha512",
            "signature_encoding": "base64",
            "signature_formatter": "v1={signature}",
        },
        "AWS_PROD": {
            "type": "aws_auth",
            "secret_access_key": "aws-real-secret-0123456789",
            "hosts": ["sqs.eu-west-1.amazonaws.com"],
            "access_key_id": "AKIAREALKEY0000EXAMPLE",
            "regions": ["eu-west-1"],
            "services": ["sqs"],
        },
        "CRM": {
            "type": "oauth_token",
            "client_secret": "oauth-real-secret-0123456789",
            "hosts": ["api.crm.example.com"],
            "client_id": "chiron",
            "token_url": "https://auth.crm.example.com/token",
            "scopes": ["read"],
        },
    }
    parsed = [parse_declaration(name, doc) for name, doc in declarations.items()]
    effective = effective_config(
        "prn_1",
        roles=[],
        grants=[Grant(p.spec.name, 1, principal_id="prn_1") for p in parsed],
        secrets=[p.spec for p in parsed],
        base_allowlist=[],
        values={p.spec.name: p.value for p in parsed if p.value is not None},
    )
    config = proxy_config_from_effective(effective)
    assert config.methods == {
        "HOOK_KEY": HmacSign("x-sig", "sha512", "base64", "v1={signature}"),
        "AWS_PROD": AwsSign("AKIAREALKEY0000EXAMPLE", ("eu-west-1",), ("sqs",)),
        "CRM": OAuthClient("https://auth.crm.example.com/token", "chiron", ("read",)),
    }
    (hmac_t,) = config.transforms_for("hooks.example.com", "POST", "/")
    assert (hmac_t.kind, hmac_t.target, hmac_t.formatter) == (
        "hmac_sign",
        "header:x-sig",
        "v1={signature}",
    )
    (aws_t,) = config.transforms_for("sqs.eu-west-1.amazonaws.com", "POST", "/")
    assert (aws_t.kind, aws_t.target) == ("aws_sigv4", "header:authorization")
    (crm_t,) = config.transforms_for("api.crm.example.com", "GET", "/")
    assert (crm_t.kind, crm_t.formatter) == ("inject", "Bearer {value}")
    # The minted token (like the client secret) shows as the secret's name in responses.
    assert config.stand_in("CRM") == "CRM"
    assert "oauth-real-secret" not in repr(config)


def test_secret_rule_shapes() -> None:
    key = HmacSign("X-Sig")
    assert SecretRule(name="K", value=VALUE, hosts=("a.example.com",), hmac=key).method == key
    with pytest.raises(ValueError, match="no replace or inject"):
        SecretRule(
            name="K", value=VALUE, hosts=("a.example.com",), hmac=key, replace=ReplaceIn("K")
        )
    with pytest.raises(ValueError, match="exactly one of replace or inject"):
        SecretRule(
            name="K",
            value=VALUE,
            hosts=("a.example.com",),
            oauth=OAuthClient("https://a.example.com/t", "c"),
        )
