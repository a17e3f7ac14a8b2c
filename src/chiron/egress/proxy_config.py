"""What one sandbox's listener applies: the proxy's own input type (DESIGN.md §8).

A `ProxyConfig` has the shape of the registry's effective config (see
`effective_config_adapter.py`): allowed hosts, and per host pattern the transforms to apply,
already resolved for conflicts. An exact host's entry is complete (it includes what wildcard
entries covering it contribute); a host without an exact entry uses its one-label wildcard's.
Values ride separately in `values` (secret name → value) and never appear in a repr.
Secrets used other than as they are (HMAC keys, AWS keys, OAuth client secrets) have their
`SecretMethod` in `methods` (see `secret_methods.py`).

`ProxyConfig.from_secrets` builds one from per-secret `SecretRule`s, for tests, benchmarks
and callers without a registry; it does no conflict resolution.

Egress goes to port 443 over TLS only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chiron.credentials.host_rules import host_matches, path_matches
from chiron.egress.secret_methods import AwsSign, HmacSign, OAuthClient, SecretMethod

HTTPS_PORT = 443
REPLACE = "replace"
INJECT = "inject"
HMAC_SIGN = "hmac_sign"
AWS_SIGV4 = "aws_sigv4"
# Config hashes only compare configs within this process: keyed, so a hash that ends up in a
# log cannot be used to guess a value offline.
_HASH_KEY = _random.token_bytes(32)


@dataclass(frozen=True)
class Transform:
    """One change to matching requests on a host.

    `kind`: `replace` (swap `placeholder` for the value inside `target`), `inject` (set
    `target` to `formatter` with `{value}` filled in), `hmac_sign` (set header `target` to
    `formatter` with `{signature}` filled in) or `aws_sigv4` (re-sign the request).
    `target`: `header:<name>`, `query:<name>`, `path` or `body`.
    """

    secret: str
    kind: str
    target: str
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    placeholder: str | None = None
    formatter: str | None = None

    def applies_to(self, method: str, path: str | None) -> bool:
        """`path` None (an ambiguous request path) matches only transforms without paths."""
        if self.methods and method.upper() not in self.methods:
            return False
        if not self.paths:
            return True
        return path is not None and any(path_matches(prefix, path) for prefix in self.paths)


@dataclass(frozen=True)
class ProxyConfig:
    principal_id: str | None
    allowed_hosts: tuple[str, ...] = ()
    hosts: Mapping[str, tuple[Transform, ...]] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Secrets not used as they are: name → how (see `secret_methods.py`).
    methods: Mapping[str, SecretMethod] = field(default_factory=dict)
    # The registry's hash of the rules (it leaves values out); kept for diagnostics.
    source_hash: str = ""
    # Identifies rules *and* values: a listener given the same hash again does nothing.
    config_hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name, value in self.values.items():
            # A line break in a value would let it forge headers once swapped in.
            if not value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
                raise ValueError(f"secret {name}: the value is empty or has control characters")
        if not self.config_hash:
            object.__setattr__(self, "config_hash", _digest(self))

    def transforms_for(self, host: str, method: str, path: str | None) -> tuple[Transform, ...]:
        entry = self.hosts.get(host)
        if entry is None:
            parent = host.partition(".")[2]
            entry = self.hosts.get(f"*.{parent}", ()) if parent else ()
        return tuple(t for t in entry if t.applies_to(method, path))

    def stand_ins(self) -> list[tuple[str, str]]:
        """(value, what a response shows instead): its placeholder, else the secret's name."""
        return [(value, self.stand_in(name)) for name, value in self.values.items()]

    def stand_in(self, secret: str) -> str:
        """What a response shows instead of the secret's value (or of a token minted with it)."""
        for transforms in self.hosts.values():
            for t in transforms:
                if t.secret == secret and t.placeholder is not None:
                    return t.placeholder
        return secret

    @classmethod
    def from_secrets(
        cls,
        principal_id: str | None,
        secrets: Iterable[SecretRule],
        *,
        allowed_hosts: Iterable[str] = (),
    ) -> ProxyConfig:
        rules = list(secrets)
        patterns = sorted({host for rule in rules for host in rule.hosts})
        hosts: dict[str, tuple[Transform, ...]] = {}
        for pattern in patterns:
            exact = not pattern.startswith("*.")
            hosts[pattern] = tuple(
                t
                for rule in rules
                if pattern in rule.hosts
                or (exact and any(host_matches(p, pattern) for p in rule.hosts))
                for t in rule.transforms()
            )
        return cls(
            principal_id=principal_id,
            allowed_hosts=tuple(sorted(set(allowed_hosts))),
            hosts=hosts,
            values={rule.name: rule.value for rule in rules},
            methods={rule.name: rule.method for rule in rules if rule.method is not None},
        )

    def __repr__(self) -> str:
        return (
            f"ProxyConfig(principal_id={self.principal_id!r}, "
            f"allowed_hosts={self.allowed_hosts!r}, hosts={sorted(self.hosts)!r}, "
            f"secrets={sorted(self.values)!r}, config_hash={self.config_hash[:12]!r})"
        )


@dataclass(frozen=True)
class ReplaceIn:
    """Replace mode: the sandbox holds `placeholder`; it becomes the value in these places."""

    placeholder: str
    headers: tuple[str, ...] = ("authorization",)
    query: tuple[str, ...] = ()
    path: bool = False
    body: bool = False


@dataclass(frozen=True)
class InjectAs:
    """Inject mode: the proxy sets `header` (or query parameter `query`) to `formatter`."""

    header: str | None = None
    query: str | None = None
    formatter: str = "{value}"


@dataclass(frozen=True)
class SecretRule:
    """One secret as a whole: the input of `ProxyConfig.from_secrets`.

    Exactly one of `replace` or `inject`; with `oauth` they place the minted token. `hmac`
    and `aws` stand alone (their value is never placed into a request).
    """

    name: str
    value: str = field(repr=False)
    hosts: tuple[str, ...]
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    replace: ReplaceIn | None = None
    inject: InjectAs | None = None
    hmac: HmacSign | None = None
    aws: AwsSign | None = None
    oauth: OAuthClient | None = None

    @property
    def method(self) -> SecretMethod | None:
        return self.hmac or self.aws or self.oauth

    def __post_init__(self) -> None:
        signs = (self.hmac is not None) + (self.aws is not None)
        if signs + (self.oauth is not None) > 1:
            raise ValueError(f"secret {self.name}: at most one of hmac, aws or oauth")
        if signs and (self.replace is not None or self.inject is not None):
            raise ValueError(f"secret {self.name}: a signing secret takes no replace or inject")
        if not signs and (self.replace is None) == (self.inject is None):
            raise ValueError(f"secret {self.name}: exactly one of replace or inject is required")
        if not self.hosts:
            raise ValueError(f"secret {self.name}: at least one host is required")
        if not self.value:
            raise ValueError(f"secret {self.name}: the value is empty")
        if self.inject is not None and (self.inject.header is None) == (self.inject.query is None):
            raise ValueError(f"secret {self.name}: inject needs exactly one of header or query")

    def transforms(self) -> list[Transform]:
        def make(kind: str, target: str, **extra: str) -> Transform:
            return Transform(self.name, kind, target, self.methods, self.paths, **extra)

        if self.hmac is not None:
            header = f"header:{self.hmac.header.lower()}"
            return [make(HMAC_SIGN, header, formatter=self.hmac.formatter)]
        if self.aws is not None:
            return [make(AWS_SIGV4, "header:authorization")]
        if self.inject is not None:
            target = (
                f"header:{self.inject.header.lower()}"
                if self.inject.header is not None
                else f"query:{self.inject.query}"
            )
            return [make(INJECT, target, formatter=self.inject.formatter)]
        assert self.replace is not None
        r = self.replace
        targets = [f"header:{h.lower()}" for h in r.headers] + [f"query:{q}" for q in r.query]
        targets += ["path"] * r.path + ["body"] * r.body
        return [make(REPLACE, target, placeholder=r.placeholder) for target in targets]


def _digest(config: ProxyConfig) -> str:
    document = {
        "principal_id": config.principal_id,
        "allowed_hosts": sorted(config.allowed_hosts),
        "hosts": {host: [repr(t) for t in ts] for host, ts in sorted(config.hosts.items())},
        "values": {
            name: hmac.new(_HASH_KEY, value.encode(), hashlib.sha256).hexdigest()
            for name, value in sorted(config.values.items())
        },
        "methods": {name: repr(method) for name, method in sorted(config.methods.items())},
        "source_hash": config.source_hash,
    }
    return hmac.new(_HASH_KEY, json.dumps(document, sort_keys=True).encode(), "sha256").hexdigest()
