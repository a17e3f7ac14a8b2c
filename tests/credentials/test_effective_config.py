"""The effective config: union of hosts, conflicts by priority then name, a hash over rules
only, and placeholders in the sandbox environment."""

from __future__ import annotations

from typing import Any

from chiron.credentials import Grant, SecretSpec, effective_config, parse_declaration


def spec(name: str, **fields: Any) -> SecretSpec:
    declaration = {"type": "http", "hosts": ["api.example.com"], **fields}
    return parse_declaration(name, declaration, value_required=False).spec


GITHUB = spec("GITHUB_TOKEN", hosts=["api.github.com"])
SLACK = spec(
    "SLACK_BOT",
    hosts=["*.slack.com"],
    inject_header="Authorization",
    inject_formatter="Bearer {value}",
)
OTHER = spec("NOT_GRANTED", hosts=["secret.example.com"])


def test_granted_secrets_hosts_and_env() -> None:
    config = effective_config(
        "prn_1",
        ["dev"],
        [
            Grant("GITHUB_TOKEN", principal_id="prn_1"),
            Grant("SLACK_BOT", role="dev"),
            Grant("NOT_GRANTED", principal_id="prn_2"),
            Grant("NOT_GRANTED", role="ops"),
        ],
        [GITHUB, SLACK, OTHER],
        ["pypi.org", "*.pythonhosted.org"],
    )
    assert config.allowed_hosts == (
        "*.pythonhosted.org",
        "*.slack.com",
        "api.github.com",
        "pypi.org",
    )
    assert [g.spec.name for g in config.secrets] == ["GITHUB_TOKEN", "SLACK_BOT"]
    assert config.secrets[1].granted_via == ("role:dev",)
    # Replace-mode secrets put their placeholder in the environment; inject-mode ones nothing.
    assert config.env == {"GITHUB_TOKEN": "GITHUB_TOKEN"}
    assert config.allows("files.pythonhosted.org") and config.allows("hooks.slack.com")
    assert not config.allows("secret.example.com") and not config.allows("slack.com")
    (swap,) = config.transforms_for("api.github.com", "GET", "/user")
    assert (swap.kind, swap.target, swap.placeholder) == (
        "replace",
        "header:authorization",
        "GITHUB_TOKEN",
    )
    (inject,) = config.transforms_for("hooks.slack.com", "POST", "/x")
    assert (inject.kind, inject.formatter) == ("inject", "Bearer {value}")
    assert config.transforms_for("pypi.org", "GET", "/simple/") == ()


def test_no_grants_means_only_the_base_allowlist() -> None:
    config = effective_config("prn_1", [], [], [GITHUB], ["pypi.org"])
    assert config.allowed_hosts == ("pypi.org",) and config.env == {} and config.hosts == {}


def test_a_secret_granted_twice_counts_with_its_highest_priority() -> None:
    config = effective_config(
        "prn_1",
        ["a", "b"],
        [
            Grant("GITHUB_TOKEN", 3, role="a"),
            Grant("GITHUB_TOKEN", 7, role="b"),
            Grant("GITHUB_TOKEN", 1, principal_id="prn_1"),
        ],
        [GITHUB],
        [],
    )
    (granted,) = config.secrets
    assert granted.priority == 7 and granted.granted_via == ("principal", "role:a", "role:b")


def test_conflicts_on_one_host_and_header_go_to_the_higher_priority() -> None:
    low = spec("LOW_KEY", inject_header="X-Api-Key")
    high = spec("HIGH_KEY", inject_header="x-api-key")
    config = effective_config(
        "p", [], [Grant("LOW_KEY", 1, "p"), Grant("HIGH_KEY", 5, "p")], [low, high], []
    )
    assert [t.secret for t in config.hosts["api.example.com"]] == ["HIGH_KEY"]
    (override,) = config.overridden
    assert (override.secret, override.by, override.target) == (
        "LOW_KEY",
        "HIGH_KEY",
        "header:x-api-key",
    )
    assert override.reason == "priority 5 beats 1"


def test_equal_priorities_are_settled_by_name_and_say_so() -> None:
    b = spec("B_KEY", inject_header="X-Api-Key")
    a = spec("A_KEY", inject_header="X-Api-Key")
    for order in ([a, b], [b, a]):
        config = effective_config(
            "p", [], [Grant("B_KEY", 2, "p"), Grant("A_KEY", 2, "p")], order, []
        )
        assert [t.secret for t in config.hosts["api.example.com"]] == ["A_KEY"]
        assert config.overridden[0].reason == "equal priority 2: 'A_KEY' sorts before 'B_KEY'"


def test_what_is_and_is_not_a_conflict() -> None:
    one = spec("ONE_TOKEN")  # replace, placeholder ONE_TOKEN in authorization
    two = spec("TWO_TOKEN")  # replace, other placeholder in the same header: both apply
    same = spec("SAME_PLACEHOLDER", placeholder="ONE_TOKEN")  # same placeholder: conflict
    get_only = spec("GET_KEY", inject_header="X-Key", methods=["GET"])
    post_only = spec("POST_KEY", inject_header="X-Key", methods=["POST"])  # disjoint: both
    grants = [Grant(s.name, 1, "p") for s in (one, two, same, get_only, post_only)]
    config = effective_config("p", [], grants, [one, two, same, get_only, post_only], [])
    kept = sorted(t.secret for t in config.hosts["api.example.com"])
    assert kept == ["GET_KEY", "ONE_TOKEN", "POST_KEY", "TWO_TOKEN"]
    assert [(o.secret, o.by) for o in config.overridden] == [("SAME_PLACEHOLDER", "ONE_TOKEN")]
    posted = {t.secret for t in config.transforms_for("api.example.com", "POST", "/")}
    assert posted == {"ONE_TOKEN", "TWO_TOKEN", "POST_KEY"}


def test_an_inject_beats_a_lower_replace_on_the_same_header() -> None:
    replace = spec("REPLACE_TOKEN")
    inject = spec("INJECT_TOKEN", inject_header="Authorization")
    config = effective_config(
        "p",
        [],
        [Grant("REPLACE_TOKEN", 1, "p"), Grant("INJECT_TOKEN", 2, "p")],
        [replace, inject],
        [],
    )
    assert [t.secret for t in config.hosts["api.example.com"]] == ["INJECT_TOKEN"]
    # Still granted: its placeholder stays in the environment.
    assert config.env == {"REPLACE_TOKEN": "REPLACE_TOKEN"}


def test_exact_hosts_inherit_wildcard_transforms_and_conflict_with_them() -> None:
    wide = spec("WIDE_KEY", hosts=["*.example.com"], inject_header="X-Key")
    narrow = spec("NARROW_KEY", hosts=["api.example.com"], inject_header="X-Key")
    config = effective_config(
        "p", [], [Grant("WIDE_KEY", 9, "p"), Grant("NARROW_KEY", 1, "p")], [wide, narrow], []
    )
    assert [t.secret for t in config.transforms_for("api.example.com", "GET", "/")] == ["WIDE_KEY"]
    assert [t.secret for t in config.transforms_for("www.example.com", "GET", "/")] == ["WIDE_KEY"]
    assert config.overridden[0].host == "api.example.com"


def test_the_hash_is_stable_follows_rules_and_ignores_values() -> None:
    grants = [Grant("GITHUB_TOKEN", 1, "prn_1"), Grant("SLACK_BOT", 1, role="dev")]

    def build(
        secrets: list[SecretSpec],
        values: dict[str, str] | None = None,
        base: tuple[str, ...] = ("pypi.org",),
    ) -> str:
        return effective_config("prn_1", ["dev"], grants, secrets, base, values).hash

    reference = build([GITHUB, SLACK])
    assert len(reference) == 64
    assert build([SLACK, GITHUB]) == reference  # input order does not matter
    assert build([GITHUB, SLACK], {"GITHUB_TOKEN": "ghp_one_value_123"}) == reference
    assert build([GITHUB, SLACK], {"GITHUB_TOKEN": "ghp_another_value_456"}) == reference
    assert (
        build([spec("GITHUB_TOKEN", hosts=["api.github.com", "uploads.github.com"]), SLACK])
        != reference
    )
    assert (
        build([spec("GITHUB_TOKEN", hosts=["api.github.com"], methods=["GET"]), SLACK]) != reference
    )
    assert build([GITHUB, SLACK], base=("pypi.org", "files.pythonhosted.org")) != reference
    assert (
        effective_config(
            "prn_1",
            ["dev"],
            [grants[0], Grant("SLACK_BOT", 2, role="dev")],
            [GITHUB, SLACK],
            ["pypi.org"],
        ).hash
        != reference
    )


def test_values_ride_along_but_never_show() -> None:
    value = "ghp_real_value_never_in_json"
    config = effective_config(
        "prn_1",
        [],
        [Grant("GITHUB_TOKEN", 0, "prn_1")],
        [GITHUB, OTHER],
        [],
        {"GITHUB_TOKEN": value, "NOT_GRANTED": "other_real_value"},
    )
    assert dict(config.values) == {"GITHUB_TOKEN": value}
    assert value not in repr(config) and value not in str(config.to_json())
    assert config.to_json()["hash"] == config.hash
    without = effective_config("prn_1", [], [Grant("GITHUB_TOKEN", 0, "prn_1")], [GITHUB], [])
    assert without == config  # values take no part in equality either


def test_aws_secret_gives_the_sandbox_stand_in_keys_not_values() -> None:
    aws = parse_declaration(
        "AWS_PROD",
        {
            "type": "aws_auth",
            "hosts": ["*.amazonaws.com"],
            "access_key_id": "AKIDEXAMPLE12345",
            "regions": ["eu-west-1"],
            "services": ["sqs"],
        },
        value_required=False,
    ).spec
    config = effective_config(
        "prn_1",
        [],
        [Grant("AWS_PROD", principal_id="prn_1")],
        [aws],
        [],
        {"AWS_PROD": "s3cr3t-v4lue"},
    )
    assert config.env == {"AWS_ACCESS_KEY_ID": "AWS_PROD", "AWS_SECRET_ACCESS_KEY": "AWS_PROD"}
    assert "s3cr3t-v4lue" not in repr(config) and "AKIDEXAMPLE12345" not in config.env.values()
