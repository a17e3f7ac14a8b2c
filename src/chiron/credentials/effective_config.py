"""The effective config: what one principal's egress proxy applies (DESIGN.md §8). Pure: no I/O.

`effective_config(principal_id, roles, grants, secrets, base_allowlist)` decides:

- the granted secrets: grants to the principal or to one of its roles; a secret granted more
  than once counts with its highest priority;
- allowed hosts: the base allowlist plus every host of every granted secret (default deny beyond);
- per host, the transforms to apply. A transform writes one target of a request (`header:x`,
  `query:x`, `path`, `body`). An exact host also gets the transforms of wildcard hosts that
  cover it; the proxy uses the exact entry for a host if there is one, else its wildcard entry;
- conflicts: two transforms on the same host and target whose method/path rules overlap, where
  one of them sets the target outright (inject, signing) or both replace the same placeholder.
  The higher priority wins; on equal priority the secret whose name sorts first wins. Every
  decision is listed in `overridden` with its reason;
- the sandbox environment: `NAME=placeholder` for every granted replace-mode secret (and
  `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` stand-ins for an `aws_auth` secret), nothing
  for the others;
- `hash`: SHA-256 of the canonical JSON of all the above. Values are not part of it: they ride
  in `values`, which is excluded from `repr`, equality and `to_json()`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chiron.credentials.host_rules import (
    host_matches,
    method_path_matches,
    normalize_host_pattern,
    rules_overlap,
)
from chiron.credentials.secret_spec import SecretSpec

CONFIG_VERSION = 1


@dataclass(frozen=True)
class Grant:
    """A grant as the pure function needs it: one secret to one principal or one role."""

    secret: str
    priority: int = 0
    principal_id: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Transform:
    """One change a proxy makes to matching requests on one host."""

    secret: str
    # replace | inject | hmac_sign | aws_sigv4
    kind: str
    # header:<name> | query:<name> | path | body
    target: str
    priority: int
    methods: tuple[str, ...]
    paths: tuple[str, ...]
    placeholder: str | None = None
    formatter: str | None = None

    @property
    def exclusive(self) -> bool:
        """Sets the whole target (rather than swapping one placeholder inside it)."""
        return self.kind != "replace"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "secret": self.secret,
            "kind": self.kind,
            "target": self.target,
            "priority": self.priority,
            "methods": list(self.methods),
            "paths": list(self.paths),
        }
        if self.placeholder is not None:
            doc["placeholder"] = self.placeholder
        if self.formatter is not None:
            doc["formatter"] = self.formatter
        return doc


@dataclass(frozen=True)
class Override:
    """A transform dropped on one host because another one won the same target."""

    host: str
    target: str
    secret: str
    by: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "host": self.host,
            "target": self.target,
            "secret": self.secret,
            "by": self.by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GrantedSecret:
    spec: SecretSpec
    priority: int
    granted_via: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "type": self.spec.type,
            "priority": self.priority,
            "granted_via": list(self.granted_via),
            "declaration": self.spec.document(),
        }


@dataclass(frozen=True)
class EffectiveConfig:
    principal_id: str
    roles: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    secrets: tuple[GrantedSecret, ...]
    hosts: Mapping[str, tuple[Transform, ...]]
    overridden: tuple[Override, ...]
    env: Mapping[str, str]
    hash: str
    # Real values by secret name, for the proxy only: never in repr, equality or JSON.
    values: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The config as the API shows it: no values, with its hash."""
        return {**_document(self), "hash": self.hash}

    def allows(self, host: str) -> bool:
        return any(host_matches(pattern, host) for pattern in self.allowed_hosts)

    def transforms_for(self, host: str, method: str, path: str) -> tuple[Transform, ...]:
        """What applies to one request: the exact host's entry, else its wildcard's."""
        host = host.lower().rstrip(".")
        entry = self.hosts.get(host)
        if entry is None:
            parent = host.partition(".")[2]
            entry = self.hosts.get(f"*.{parent}", ()) if parent else ()
        return tuple(t for t in entry if method_path_matches(t.methods, t.paths, method, path))


def effective_config(
    principal_id: str,
    roles: Iterable[str],
    grants: Iterable[Grant],
    secrets: Iterable[SecretSpec],
    base_allowlist: Iterable[str],
    values: Mapping[str, str] | None = None,
) -> EffectiveConfig:
    role_set = set(roles)
    priorities: dict[str, int] = {}
    via: dict[str, set[str]] = {}
    for grant in grants:
        if grant.principal_id == principal_id and grant.principal_id is not None:
            source = "principal"
        elif grant.role is not None and grant.role in role_set:
            source = f"role:{grant.role}"
        else:
            continue
        priorities[grant.secret] = max(grant.priority, priorities.get(grant.secret, grant.priority))
        via.setdefault(grant.secret, set()).add(source)

    granted = [
        GrantedSecret(spec, priorities[spec.name], tuple(sorted(via[spec.name])))
        for spec in sorted(secrets, key=lambda s: s.name)
        if spec.name in priorities
    ]
    allowed = {normalize_host_pattern(h, "base_allowlist") for h in base_allowlist}
    allowed.update(h for g in granted for h in g.spec.hosts)

    hosts: dict[str, tuple[Transform, ...]] = {}
    overridden: list[Override] = []
    for host in sorted({h for g in granted for h in g.spec.hosts}):
        candidates = [
            t
            for g in granted
            if _covers(g.spec.hosts, host)
            for t in _transforms(g.spec, g.priority)
        ]
        kept, dropped = _resolve(host, candidates)
        hosts[host] = kept
        overridden.extend(dropped)

    env = {g.spec.name: g.spec.replace.placeholder for g in granted if g.spec.replace is not None}
    # AWS SDKs sign with whatever keys they find; the proxy re-signs with the real ones, so
    # the sandbox gets stand-ins (the secret's name) under the standard variable names.
    for g in granted:
        if g.spec.aws is not None:
            env.setdefault("AWS_ACCESS_KEY_ID", g.spec.name)
            env.setdefault("AWS_SECRET_ACCESS_KEY", g.spec.name)
    granted_values = {name: v for name, v in (values or {}).items() if name in priorities}
    config = EffectiveConfig(
        principal_id=principal_id,
        roles=tuple(sorted(role_set)),
        allowed_hosts=tuple(sorted(allowed)),
        secrets=tuple(granted),
        hosts=hosts,
        overridden=tuple(overridden),
        env=env,
        hash="",
        values=granted_values,
    )
    canonical = json.dumps(_document(config), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return dataclasses.replace(config, hash=digest)


def _covers(patterns: Iterable[str], host: str) -> bool:
    """Whether a secret with these host patterns applies on the host entry `host`."""
    exact = not host.startswith("*.")
    return any(p == host or (exact and host_matches(p, host)) for p in patterns)


def _document(config: EffectiveConfig) -> dict[str, Any]:
    return {
        "version": CONFIG_VERSION,
        "principal_id": config.principal_id,
        "roles": list(config.roles),
        "allowed_hosts": list(config.allowed_hosts),
        "secrets": [g.to_json() for g in config.secrets],
        "hosts": {h: [t.to_json() for t in ts] for h, ts in sorted(config.hosts.items())},
        "overridden": [o.to_json() for o in config.overridden],
        "env": dict(sorted(config.env.items())),
    }


def _transforms(spec: SecretSpec, priority: int) -> list[Transform]:
    def make(kind: str, target: str, **extra: Any) -> Transform:
        return Transform(spec.name, kind, target, priority, spec.methods, spec.paths, **extra)

    out: list[Transform] = []
    if spec.replace is not None:
        r = spec.replace
        places = [f"header:{h}" for h in r.headers] + [f"query:{q}" for q in r.query]
        places += ["path"] * r.path + ["body"] * r.body
        out += [make("replace", place, placeholder=r.placeholder) for place in places]
    if spec.inject is not None:
        i = spec.inject
        target = f"header:{i.header}" if i.header is not None else f"query:{i.query}"
        out.append(make("inject", target, formatter=i.formatter))
    if spec.hmac is not None:
        out.append(make("hmac_sign", f"header:{spec.hmac.header}", formatter=spec.hmac.formatter))
    if spec.aws is not None:
        out.append(make("aws_sigv4", "header:authorization"))
    return out


def _resolve(
    host: str, candidates: list[Transform]
) -> tuple[tuple[Transform, ...], list[Override]]:
    """Keep the winners: highest priority first, then secret name (deterministic)."""
    kept: list[Transform] = []
    dropped: list[Override] = []
    for transform in sorted(candidates, key=lambda t: (-t.priority, t.secret, t.target)):
        winner = next((k for k in kept if _conflict(k, transform)), None)
        if winner is None:
            kept.append(transform)
            continue
        if winner.priority > transform.priority:
            reason = f"priority {winner.priority} beats {transform.priority}"
        else:
            reason = (
                f"equal priority {transform.priority}: "
                f"{winner.secret!r} sorts before {transform.secret!r}"
            )
        dropped.append(Override(host, transform.target, transform.secret, winner.secret, reason))
    return tuple(sorted(kept, key=lambda t: (t.target, t.secret))), dropped


def _conflict(a: Transform, b: Transform) -> bool:
    if a.secret == b.secret or a.target != b.target:
        return False
    if not (a.exclusive or b.exclusive or a.placeholder == b.placeholder):
        return False
    return rules_overlap(a.methods, a.paths, b.methods, b.paths)
