"""Host patterns match exactly one label under a wildcard, and path prefixes respect segments."""

from __future__ import annotations

import pytest

from chiron.credentials.host_rules import (
    host_matches,
    normalize_host_pattern,
    path_matches,
    patterns_overlap,
    request_matches,
    rules_overlap,
)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "API.Example.com.", True),
        ("api.example.com", "x.api.example.com", False),
        ("*.slack.com", "hooks.slack.com", True),
        ("*.slack.com", "slack.com", False),
        ("*.slack.com", "a.b.slack.com", False),
        ("*.slack.com", "evilslack.com", False),
        ("*.slack.com", "hooks.slack.com.evil.com", False),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/repos", "/repos", True),
        ("/repos", "/repos/x", True),
        ("/repos", "/repository", False),
        ("/repos/", "/repos/x", True),
        ("/repos/", "/repos", False),
        ("/", "/anything", True),
    ],
)
def test_path_prefixes_respect_segments(prefix: str, path: str, expected: bool) -> None:
    assert path_matches(prefix, path) is expected


def test_request_matches_needs_host_method_and_path() -> None:
    rules = (["api.example.com"], ["GET"], ["/v1/"])
    assert request_matches(*rules, host="api.example.com", method="get", path="/v1/x")
    assert not request_matches(*rules, host="api.example.com", method="POST", path="/v1/x")
    assert not request_matches(*rules, host="api.example.com", method="GET", path="/v2/x")
    assert not request_matches(*rules, host="other.example.com", method="GET", path="/v1/x")
    assert request_matches(
        ["api.example.com"], [], [], host="api.example.com", method="X", path="/"
    )


def test_overlaps() -> None:
    assert patterns_overlap("*.example.com", "api.example.com")
    assert not patterns_overlap("*.example.com", "*.other.com")
    assert not patterns_overlap("*.example.com", "example.com")
    assert rules_overlap([], [], ["GET"], ["/a"])
    assert not rules_overlap(["GET"], [], ["POST"], [])
    assert rules_overlap(["GET"], ["/a"], ["GET", "POST"], ["/a/b"])
    assert not rules_overlap([], ["/a"], [], ["/b"])


def test_normalization_lowercases_and_strips() -> None:
    assert normalize_host_pattern("  API.Example.COM ", "h") == "api.example.com"
    assert normalize_host_pattern("*.Example.com", "h") == "*.example.com"
    assert normalize_host_pattern("xn--bcher-kva.example", "h") == "xn--bcher-kva.example"
