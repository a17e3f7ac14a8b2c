"""How the proxy turns an allowed name into an address it will connect to.

The proxy runs on its own event loop (`PolicyEventLoop`), whose `getaddrinfo` is the only
resolver its upstream connections use:

- a name listed in `CHIRON_EGRESS_RESOLVE` (`host=ip:port`) goes to that address and port
  (tests, split DNS): the operator chose it, so a private address is fine;
- any other name is resolved normally and refused when any of its addresses is not a public
  unicast address (loopback, private, link-local, shared, multicast, reserved), so an allowed
  name cannot be pointed at the host or the local network by whoever controls its DNS.

The name itself stays the connection's address, so SNI, certificate checks and policy all see
the name, never the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from chiron.credentials.errors import InvalidDeclaration
from chiron.credentials.host_rules import normalize_host_pattern


class NonPublicAddress(OSError):
    """An allowed name resolved to an address the proxy never connects to."""


@dataclass(frozen=True)
class ResolveOverride:
    host: str
    ip: str
    port: int


def parse_overrides(entries: dict[str, str]) -> dict[str, ResolveOverride]:
    """`{"api.example.com": "10.0.0.5:443"}` → overrides; ValueError names the bad entry."""
    overrides = {}
    for raw_host, target in entries.items():
        try:
            host = normalize_host_pattern(raw_host, "host")
        except InvalidDeclaration as exc:
            raise ValueError(f"{raw_host!r}: {exc.problem}") from None
        if host.startswith("*."):
            raise ValueError(f"{raw_host!r}: name one host, not a wildcard")
        ip_text, sep, port_text = target.rpartition(":")
        ip_text = ip_text.removeprefix("[").removesuffix("]")
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            raise ValueError(f"{raw_host}={target!r}: the target must be ip:port") from None
        if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{raw_host}={target!r}: the target must be ip:port")
        overrides[host] = ResolveOverride(host, str(ip), int(port_text))
    return overrides


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PolicyEventLoop(asyncio.SelectorEventLoop):
    """The proxy's event loop: name resolution goes through the overrides and the
    public-address rule above. Nothing but the proxy runs on it."""

    def __init__(self, overrides: dict[str, ResolveOverride]) -> None:
        super().__init__()
        self._overrides = overrides

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        name = host.decode("idna") if isinstance(host, bytes) else host
        key = (name or "").lower().rstrip(".")
        override = self._overrides.get(key)
        if override is not None:
            ip_family = socket.AF_INET6 if ":" in override.ip else socket.AF_INET
            if family not in (0, ip_family):
                raise socket.gaierror(socket.EAI_FAMILY, f"no {family} address for {key}")
            return [
                (
                    ip_family,
                    type or socket.SOCK_STREAM,
                    proto or socket.IPPROTO_TCP,
                    "",
                    (override.ip, override.port),
                )
            ]
        infos = await super().getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags
        )
        for info in infos:
            if not is_public(str(info[4][0])):
                raise NonPublicAddress(f"{key} resolves to a non-public address")
        return infos
