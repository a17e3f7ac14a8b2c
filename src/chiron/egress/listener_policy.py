"""The decisions a listener takes for each destination and request, from its loaded config.

`ListenerPolicy` is a `ProxyConfig` made ready for the hot path (allowlist, scrub table); the
functions below are the whole egress policy, pure and shared by every addon:

- `destination_denial`: may a connection go to this host and port at all;
- `request_path`: the path secrets' path rules are matched against, or None when the path is
  ambiguous (dot segments, encoded separators), so that no path-restricted secret applies.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field

from chiron.credentials.host_rules import host_matches
from chiron.egress.proxy_config import HTTPS_PORT, ProxyConfig
from chiron.egress.stream_scrubber import ScrubTable

# Reasons a request is denied, as passed to `on_denied` and stored in audit records.
NOT_ALLOWED = "host-not-allowed"
IP_LITERAL = "ip-literal"
PORT_NOT_ALLOWED = "port-not-allowed"
PLAIN_HTTP = "plain-http"
HOST_MISMATCH = "host-mismatch"
NOT_HTTP = "not-http"

_AMBIGUOUS_PATH = re.compile(r"%2[ef]|%5c|\\", re.IGNORECASE)


@dataclass(frozen=True)
class ListenerPolicy:
    config: ProxyConfig
    base_allow: tuple[str, ...] = ()
    allowed: tuple[str, ...] = field(init=False)
    scrub: ScrubTable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts = set(self.base_allow) | set(self.config.allowed_hosts) | set(self.config.hosts)
        object.__setattr__(self, "allowed", tuple(sorted(hosts)))
        object.__setattr__(self, "scrub", ScrubTable(self.config.stand_ins()))

    def allows(self, host: str) -> bool:
        return any(host_matches(pattern, host) for pattern in self.allowed)


def normalize_host(host: str) -> str:
    return host.lower().removesuffix(".")


def is_ip_literal(host: str) -> bool:
    candidate = host.removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Forms inet_aton accepts (`2130706433`, `0x7f.1`) are addresses too; all-numeric
        # last labels never name a host.
        last = candidate.rsplit(".", 1)[-1]
        return last.isdigit() or last.lower().startswith("0x")
    return True


def destination_denial(policy: ListenerPolicy, host: str, port: int) -> str | None:
    """Why a connection to `host:port` is refused, or None when it may go ahead."""
    name = normalize_host(host)
    if is_ip_literal(name):
        return IP_LITERAL
    if port != HTTPS_PORT:
        return PORT_NOT_ALLOWED
    if not policy.allows(name):
        return NOT_ALLOWED
    return None


def host_header_matches(host_header: str | None, host: str, port: int) -> bool:
    """Whether a request's Host (or :authority) names the tunnel's host and port."""
    if not host_header:
        return False
    value = host_header.strip().lower()
    name, sep, port_text = value.rpartition(":")
    if sep and port_text.isdigit() and "]" not in port_text:
        return normalize_host(name) == host and int(port_text) == port
    return normalize_host(value) == host and port == HTTPS_PORT


def request_path(raw_path: str) -> str | None:
    """The path part of a request target, or None when its meaning is ambiguous."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or _AMBIGUOUS_PATH.search(path):
        return None
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        return None
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return path if normalized == path else None
