"""Secret declarations fail closed, and every rejection names the field (never the value)."""

from __future__ import annotations

from typing import Any

import pytest

from chiron.credentials import InvalidDeclaration, parse_declaration

VALUE = "s3cr3t-VALUE-never-shown"


def http(**fields: Any) -> dict[str, Any]:
    return {"type": "http", "value": VALUE, "hosts": ["api.example.com"], **fields}


BAD: list[tuple[str, str, dict[str, Any], str]] = [
    # (id, name, declaration, field named in the error)
    ("missing hosts", "TOKEN", {"type": "http", "value": VALUE}, "hosts"),
    ("empty hosts", "TOKEN", http(hosts=[]), "hosts"),
    ("catch-all", "TOKEN", http(hosts=["*"]), "hosts[0]"),
    ("bare TLD wildcard", "TOKEN", http(hosts=["*.com"]), "hosts[0]"),
    ("multi-label wildcard", "TOKEN", http(hosts=["*.*.example.com"]), "hosts[0]"),
    ("inner wildcard", "TOKEN", http(hosts=["api.*.example.com"]), "hosts[0]"),
    ("partial wildcard", "TOKEN", http(hosts=["a*.example.com"]), "hosts[0]"),
    ("IPv4 literal", "TOKEN", http(hosts=["10.0.0.1"]), "hosts[0]"),
    ("IPv6 literal", "TOKEN", http(hosts=["[::1]"]), "hosts[0]"),
    ("bare IPv6", "TOKEN", http(hosts=["::1"]), "hosts[0]"),
    ("short IPv4 form", "TOKEN", http(hosts=["127.1"]), "hosts[0]"),
    ("scheme", "TOKEN", http(hosts=["https://x.com"]), "hosts[0]"),
    ("port", "TOKEN", http(hosts=["x.com:443"]), "hosts[0]"),
    ("path", "TOKEN", http(hosts=["x.com/api"]), "hosts[0]"),
    ("single label", "TOKEN", http(hosts=["localhost"]), "hosts[0]"),
    ("non-ASCII", "TOKEN", http(hosts=["bücher.example"]), "hosts[0]"),
    ("second host bad", "TOKEN", http(hosts=["ok.example.com", "*"]), "hosts[1]"),
    ("unknown type", "TOKEN", {**http(), "type": "ftp"}, "type"),
    ("missing type", "TOKEN", {"value": VALUE, "hosts": ["a.example.com"]}, "type"),
    (
        "inject and replace mixed",
        "TOKEN",
        http(inject_header="X-Key", match_headers=["Authorization"]),
        "inject_header",
    ),
    (
        "replace key in inject mode",
        "TOKEN",
        http(mode="inject", placeholder="x" * 10),
        "placeholder",
    ),
    (
        "inject key in replace mode",
        "TOKEN",
        http(mode="replace", inject_header="X"),
        "inject_header",
    ),
    ("inject without target", "TOKEN", http(mode="inject"), "inject_header"),
    ("unknown mode", "TOKEN", http(mode="swap"), "mode"),
    ("unknown field", "TOKEN", http(host=["a.example.com"]), "host"),
    ("empty name", "", http(), "name"),
    ("lowercase name", "github_token", http(), "name"),
    ("name with dash", "GITHUB-TOKEN", http(), "name"),
    ("name starting with digit", "1TOKEN", http(), "name"),
    ("short placeholder", "TOKEN", http(placeholder="abc"), "placeholder"),
    ("placeholder with space", "TOKEN", http(placeholder="my placeholder"), "placeholder"),
    ("value missing", "TOKEN", {"type": "http", "hosts": ["a.example.com"]}, "value"),
    ("value too short", "TOKEN", http(value="short"), "value"),
    ("value with newline", "TOKEN", http(value=VALUE + "\nX-Evil: 1"), "value"),
    ("value as placeholder", "TOKEN", http(placeholder=VALUE), "placeholder"),
    ("value in a plain field", "TOKEN", http(paths=[f"/{VALUE}"]), "value"),
    ("bad method", "TOKEN", http(methods=["FETCH"]), "methods[0]"),
    ("relative path", "TOKEN", http(paths=["api/"]), "paths[0]"),
    (
        "formatter without slot",
        "TOKEN",
        http(inject_header="X", inject_formatter="Bearer"),
        "inject_formatter",
    ),
    (
        "formatter with two slots",
        "TOKEN",
        http(inject_header="X", inject_formatter="{value} {value}"),
        "inject_formatter",
    ),
    (
        "formatter conversion",
        "TOKEN",
        http(inject_header="X", inject_formatter="{value!r}"),
        "inject_formatter",
    ),
    ("bad header name", "TOKEN", http(match_headers=["Bad Header"]), "match_headers[0]"),
    (
        "hmac without header",
        "KEY",
        {"type": "hmac_sign", "value": VALUE, "hosts": ["a.example.com"]},
        "signature_header",
    ),
    (
        "aws without regions",
        "AWS",
        {
            "type": "aws_auth",
            "value": VALUE,
            "hosts": ["s3.amazonaws.com"],
            "access_key_id": "AKIAABCDEFGHIJKLMNOP",
            "services": ["s3"],
        },
        "regions",
    ),
    (
        "aws wildcard region",
        "AWS",
        {
            "type": "aws_auth",
            "value": VALUE,
            "hosts": ["s3.amazonaws.com"],
            "access_key_id": "AKIAABCDEFGHIJKLMNOP",
            "regions": ["*"],
            "services": ["s3"],
        },
        "regions[0]",
    ),
    (
        "aws value twice",
        "AWS",
        {
            "type": "aws_auth",
            "value": VALUE,
            "secret_access_key": VALUE,
            "hosts": ["s3.amazonaws.com"],
        },
        "secret_access_key",
    ),
    (
        "oauth over http",
        "OAUTH",
        {
            "type": "oauth_token",
            "client_secret": VALUE,
            "client_id": "c",
            "token_url": "http://auth.example.com/t",
            "hosts": ["api.example.com"],
        },
        "token_url",
    ),
    (
        "oauth token url on an IP",
        "OAUTH",
        {
            "type": "oauth_token",
            "client_secret": VALUE,
            "client_id": "c",
            "token_url": "https://10.1.2.3/t",
            "hosts": ["api.example.com"],
        },
        "token_url",
    ),
    (
        "broker refresh too fast",
        "BROKER",
        {
            "type": "brokered_token",
            "value": VALUE,
            "broker_url": "https://b.example.com",
            "refresh_seconds": 1,
            "hosts": ["api.example.com"],
        },
        "refresh_seconds",
    ),
    (
        "hosts on hmac too",
        "KEY",
        {"type": "hmac_sign", "value": VALUE, "signature_header": "X-Sig"},
        "hosts",
    ),
]


@pytest.mark.parametrize(
    ("name", "declaration", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_declarations_are_rejected_naming_the_field(
    name: str, declaration: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidDeclaration) as caught:
        parse_declaration(name, declaration)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert VALUE not in str(caught.value)


def test_an_unknown_key_that_looks_like_a_value_is_not_echoed() -> None:
    with pytest.raises(InvalidDeclaration) as caught:
        parse_declaration("TOKEN", {**http(), VALUE: True})
    assert caught.value.field == "an unknown field" and VALUE not in str(caught.value)


def test_replace_mode_defaults_and_normalization() -> None:
    parsed = parse_declaration(
        "GITHUB_TOKEN", http(hosts=["API.GitHub.com", "*.githubusercontent.com", "api.github.com"])
    )
    spec = parsed.spec
    assert parsed.value == VALUE and VALUE not in repr(parsed)
    assert spec.hosts == ("*.githubusercontent.com", "api.github.com")
    assert spec.mode == "replace" and spec.placeholder == "GITHUB_TOKEN"
    assert spec.replace is not None and spec.replace.headers == ("authorization",)


def test_inject_mode_is_inferred_and_round_trips_through_its_document() -> None:
    spec = parse_declaration(
        "SLACK_BOT",
        http(
            hosts=["*.slack.com"],
            inject_header="Authorization",
            inject_formatter="Bearer {value}",
            methods=["post", "GET"],
            paths=["/api/"],
        ),
    ).spec
    assert spec.mode == "inject" and spec.placeholder is None
    assert spec.inject is not None and spec.inject.header == "authorization"
    assert spec.methods == ("GET", "POST")
    again = parse_declaration("SLACK_BOT", spec.document(), value_required=False)
    assert again.spec == spec and again.value is None
    assert VALUE not in repr(spec.document())


@pytest.mark.parametrize(
    "declaration",
    [
        {
            "type": "hmac_sign",
            "signature_header": "X-Hub-Signature-256",
            "signature_formatter": "sha256={signature}",
        },
        {
            "type": "aws_auth",
            "access_key_id": "AKIAABCDEFGHIJKLMNOP",
            "regions": ["eu-west-1", "us-gov-west-1"],
            "services": ["s3", "sts"],
        },
        {
            "type": "oauth_token",
            "client_id": "chiron",
            "token_url": "https://auth.example.com:8443/oauth/token",
            "scopes": ["read:org"],
        },
        {
            "type": "brokered_token",
            "broker_url": "https://broker.example.com/token",
            "mode": "replace",
            "placeholder": "BROKERED_PLACEHOLDER",
        },
    ],
    ids=lambda d: d["type"],
)
def test_every_type_parses_and_round_trips(declaration: dict[str, Any]) -> None:
    spec = parse_declaration(
        "NAME", {**declaration, "value": VALUE, "hosts": ["api.example.com"]}
    ).spec
    assert parse_declaration("NAME", spec.document(), value_required=False).spec == spec


def test_oauth_and_broker_default_to_a_bearer_header_and_aliases_carry_the_value() -> None:
    parsed = parse_declaration(
        "OAUTH",
        {
            "type": "oauth_token",
            "client_secret": VALUE,
            "client_id": "c",
            "token_url": "https://auth.example.com/t",
            "hosts": ["api.example.com"],
        },
    )
    assert parsed.value == VALUE
    assert parsed.spec.inject is not None
    assert (parsed.spec.inject.header, parsed.spec.inject.formatter) == (
        "authorization",
        "Bearer {value}",
    )


def test_short_placeholder_is_fine_when_it_is_the_name() -> None:
    assert parse_declaration("GH", http()).spec.placeholder == "GH"
    assert (
        parse_declaration("TOKEN", http(placeholder="PLACEHOLDER_1")).spec.placeholder
        == "PLACEHOLDER_1"
    )


def test_a_value_pasted_into_another_field_is_not_quoted_back() -> None:
    with pytest.raises(InvalidDeclaration) as caught:
        parse_declaration("TOKEN", http(hosts=[VALUE]))
    assert caught.value.field == "hosts[0]" and VALUE not in str(caught.value)
