"""The policy's pure decisions: destinations, Host checks and path ambiguity."""

from __future__ import annotations

import pytest

from chiron.egress.listener_policy import (
    ListenerPolicy,
    destination_denial,
    host_header_matches,
    is_ip_literal,
    request_path,
)
from chiron.egress.proxy_config import ProxyConfig, ReplaceIn, SecretRule


@pytest.fixture
def policy() -> ListenerPolicy:
    secret = SecretRule(
        name="TOKEN", value="v" * 12, hosts=("*.slack.com",), replace=ReplaceIn("TOKEN")
    )
    config = ProxyConfig.from_secrets("p", [secret], allowed_hosts=["pypi.org"])
    return ListenerPolicy(config, base_allow=("api.openai.com",))


@pytest.mark.parametrize(
    ("host", "port", "rule"),
    [
        ("api.openai.com", 443, None),
        ("pypi.org", 443, None),
        ("hooks.slack.com", 443, None),
        ("HOOKS.Slack.com.", 443, None),
        ("slack.com", 443, "host-not-allowed"),
        ("a.b.slack.com", 443, "host-not-allowed"),
        ("example.com", 443, "host-not-allowed"),
        ("pypi.org", 80, "port-not-allowed"),
        ("127.0.0.1", 443, "ip-literal"),
        ("[::1]", 443, "ip-literal"),
        ("2130706433", 443, "ip-literal"),
        ("0x7f.1", 443, "ip-literal"),
    ],
)
def test_destinations(policy: ListenerPolicy, host: str, port: int, rule: str | None) -> None:
    assert destination_denial(policy, host, port) == rule


def test_ip_literals() -> None:
    assert is_ip_literal("10.0.0.1") and is_ip_literal("fe80::1%eth0") and is_ip_literal("1.2")
    assert not is_ip_literal("api.example.com") and not is_ip_literal("x1.example.com")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("api.example.com", True),
        ("API.example.com:443", True),
        ("api.example.com.", True),
        ("api.example.com:8443", False),
        ("other.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_host_header(header: str | None, ok: bool) -> None:
    assert host_header_matches(header, "api.example.com", 443) is ok


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/repos/x?q=1", "/repos/x"),
        ("/", "/"),
        ("/repos/", "/repos/"),
        ("/repos/../admin", None),
        ("/repos/./x", None),
        ("/repos//x", None),
        ("/repos/%2e%2e/admin", None),
        ("/repos%2Fadmin", None),
        ("/a\\b", None),
        ("*", None),
    ],
)
def test_request_path(raw: str, path: str | None) -> None:
    assert request_path(raw) == path
