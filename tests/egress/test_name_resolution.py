"""Name overrides and the public-address rule of the proxy's event loop."""

from __future__ import annotations

import asyncio
import socket

import pytest

from chiron.egress.name_resolution import (
    NonPublicAddress,
    PolicyEventLoop,
    is_public,
    parse_overrides,
)


def test_parse_overrides() -> None:
    overrides = parse_overrides({"API.example.com": "10.0.0.5:8443", "b.example.com": "[::1]:1"})
    assert overrides["api.example.com"].ip == "10.0.0.5"
    assert overrides["api.example.com"].port == 8443
    assert overrides["b.example.com"].ip == "::1"
    for bad in (
        {"*.example.com": "1.2.3.4:1"},
        {"a.example.com": "host:1"},
        {"a.example.com": "1.2.3.4"},
        {"10.0.0.1": "1.2.3.4:1"},
    ):
        with pytest.raises(ValueError):
            parse_overrides(bad)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1::1", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_loop_uses_overrides_and_refuses_private_resolutions() -> None:
    loop = PolicyEventLoop(parse_overrides({"api.example.test": "127.0.0.1:4443"}))
    try:
        infos = loop.run_until_complete(
            loop.getaddrinfo("api.example.test", 443, type=socket.SOCK_STREAM)
        )
        assert [info[4] for info in infos] == [("127.0.0.1", 4443)]
        with pytest.raises(NonPublicAddress):
            loop.run_until_complete(loop.getaddrinfo("localhost", 443))
        with pytest.raises(OSError):
            loop.run_until_complete(
                asyncio.wait_for(loop.create_connection(asyncio.Protocol, "localhost", 443), 5)
            )
    finally:
        loop.close()
