"""Host, method and path rules: which requests a secret may ever touch.

A host pattern is an exact DNS name (`api.github.com`) or a wildcard of exactly one leading
label over a name of at least two labels (`*.slack.com` matches `x.slack.com`, not `slack.com`
nor `a.b.slack.com`). Everything else fails closed when declared: no hosts, `*`, bare-TLD
wildcards (`*.com`), wildcards elsewhere, IP literals, single-label names, schemes, ports,
paths, non-ASCII names (use the `xn--` form) and trailing dots.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from chiron.credentials.errors import InvalidDeclaration

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PATH_FORBIDDEN = re.compile(r"[\s?#\x00-\x1f\x7f]")


def normalize_host_pattern(raw: object, field: str) -> str:
    """The lowercase form of one host pattern, or `InvalidDeclaration` naming `field`."""
    if not isinstance(raw, str):
        raise InvalidDeclaration(field, "must be a string")
    host = raw.strip().lower()
    if not host:
        raise InvalidDeclaration(field, "must not be empty")
    if host == "*":
        raise InvalidDeclaration(field, "'*' would allow every host; name the hosts")
    if "://" in host:
        raise InvalidDeclaration(field, f"{host!r} has a scheme; give the host name only")
    if "/" in host:
        raise InvalidDeclaration(field, f"{host!r} has a path; give the host name only")
    if _is_ip_literal(host):
        raise InvalidDeclaration(field, f"{host!r} is an IP literal; name the host instead")
    if ":" in host:
        raise InvalidDeclaration(field, f"{host!r} has a port; give the host name only")
    if not host.isascii():
        raise InvalidDeclaration(field, f"{host!r} is not ASCII; use its xn-- (punycode) form")
    if host.endswith("."):
        raise InvalidDeclaration(field, f"{host!r} ends with a dot")
    labels = host.split(".")
    wildcard = labels[0] == "*"
    name_labels = labels[1:] if wildcard else labels
    if any("*" in label for label in name_labels) or ("*" in labels[0] and not wildcard):
        raise InvalidDeclaration(
            field, f"{host!r}: only one leading wildcard label is allowed, as in *.example.com"
        )
    if not all(_LABEL.match(label) for label in name_labels) or len(host) > 253:
        raise InvalidDeclaration(field, f"{host!r} is not a valid host name")
    if name_labels[-1].isdigit():
        raise InvalidDeclaration(field, f"{host!r} looks like an IP address; name the host")
    if len(name_labels) < 2:
        what = "a wildcard over a bare top-level domain" if wildcard else "a single-label name"
        raise InvalidDeclaration(
            field, f"{host!r} is {what}; name a host such as api.example.com or *.example.com"
        )
    return host


def normalize_hosts(raw: object, field: str = "hosts") -> tuple[str, ...]:
    """A non-empty, de-duplicated, sorted tuple of host patterns."""
    if raw is None or (isinstance(raw, list | tuple) and not raw):
        raise InvalidDeclaration(field, "at least one host is required (fail closed)")
    if not isinstance(raw, list | tuple):
        raise InvalidDeclaration(field, "must be a list of host names")
    return tuple(sorted({normalize_host_pattern(h, f"{field}[{i}]") for i, h in enumerate(raw)}))


def normalize_methods(raw: object, field: str = "methods") -> tuple[str, ...]:
    """HTTP verbs, uppercase and sorted; empty means every method."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise InvalidDeclaration(field, "must be a list of HTTP methods")
    methods = set()
    for i, method in enumerate(raw):
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise InvalidDeclaration(
                f"{field}[{i}]", f"must be one of {', '.join(sorted(HTTP_METHODS))}"
            )
        methods.add(method.upper())
    return tuple(sorted(methods))


def normalize_paths(raw: object, field: str = "paths") -> tuple[str, ...]:
    """Path prefixes, sorted; empty means every path.

    `/repos/` matches every path under it; `/repos` matches `/repos` and `/repos/…` but not
    `/repository` (see `path_matches`).
    """
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise InvalidDeclaration(field, "must be a list of path prefixes")
    paths = set()
    for i, path in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidDeclaration(where, "must be a path prefix starting with /")
        if _PATH_FORBIDDEN.search(path) or len(path) > 1024:
            raise InvalidDeclaration(
                where, "must not hold spaces, control characters, ? or # (max 1024 chars)"
            )
        paths.add(path)
    return tuple(sorted(paths))


def host_matches(pattern: str, host: str) -> bool:
    """Whether `host` (a request's host name) is covered by `pattern`."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


def path_matches(prefix: str, path: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def request_matches(
    hosts: Sequence[str],
    methods: Sequence[str],
    paths: Sequence[str],
    *,
    host: str,
    method: str,
    path: str,
) -> bool:
    """Whether one request falls under a secret's rules (empty methods/paths: any)."""
    return any(host_matches(p, host) for p in hosts) and method_path_matches(
        methods, paths, method, path
    )


def method_path_matches(
    methods: Sequence[str], paths: Sequence[str], method: str, path: str
) -> bool:
    return (not methods or method.upper() in methods) and (
        not paths or any(path_matches(p, path) for p in paths)
    )


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some host matches both patterns."""
    if a == b:
        return True
    if a.startswith("*.") and not b.startswith("*."):
        return host_matches(a, b)
    if b.startswith("*.") and not a.startswith("*."):
        return host_matches(b, a)
    return False


def rules_overlap(
    methods_a: Iterable[str],
    paths_a: Iterable[str],
    methods_b: Iterable[str],
    paths_b: Iterable[str],
) -> bool:
    """Whether some request satisfies both method/path restrictions."""
    ma, mb = set(methods_a), set(methods_b)
    if ma and mb and not ma & mb:
        return False
    pa, pb = list(paths_a), list(paths_b)
    if not pa or not pb:
        return True
    return any(path_matches(x, y) or path_matches(y, x) for x in pa for y in pb)


def _is_ip_literal(host: str) -> bool:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    candidate = candidate.split("%", 1)[0]  # IPv6 zone ids
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return host.startswith("[")
    return True
