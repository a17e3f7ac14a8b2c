"""The proxy CA: generated once, key private, only the certificate meant for sandboxes."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from chiron.egress import EgressCA, EgressCAError
from tests.egress.tls_servers import TestCA


def test_generated_once_with_a_private_key(tmp_path: Path) -> None:
    ca = EgressCA.ensure(tmp_path / "egress-ca")
    assert stat.S_IMODE(ca.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in ca.key_path.read_bytes()
    cert = ca.cert_path.read_bytes()
    assert b"PRIVATE KEY" not in cert and cert.startswith(b"-----BEGIN CERTIFICATE-----")
    ssl.create_default_context(cafile=str(ca.cert_path))  # a usable trust anchor
    again = EgressCA.ensure(tmp_path / "egress-ca")
    assert again.cert_path.read_bytes() == cert


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    ca = EgressCA.ensure(tmp_path / "egress-ca")
    ca.key_path.chmod(0o644)
    with pytest.raises(EgressCAError, match="chmod 600"):
        EgressCA.ensure(tmp_path / "egress-ca")


def test_upstream_bundle_adds_to_the_system_bundle(tmp_path: Path) -> None:
    ca = EgressCA.ensure(tmp_path / "egress-ca")
    assert ca.upstream_bundle(None) is None
    extra = TestCA(tmp_path / "extra")
    bundle = ca.upstream_bundle(extra.cert_path)
    assert bundle is not None
    content = bundle.read_bytes()
    assert content.endswith(extra.cert_path.read_bytes())
    assert content.count(b"BEGIN CERTIFICATE") > 10  # the system CAs are still there
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(EgressCAError, match="no PEM certificate"):
        ca.upstream_bundle(tmp_path / "junk.pem")
