"""The proxy's certificate authority and the CAs it trusts upstream.

`EgressCA.ensure(home)` creates `CHIRON_HOME/egress-ca/` (0700) on first start with a fresh CA
in mitmproxy's file layout: `mitmproxy-ca.pem` holds the private key (0600) and never leaves
that directory; `mitmproxy-ca-cert.pem` is the certificate alone, the only file mounted into
sandboxes.

Upstream, the proxy trusts the system bundle plus `CHIRON_EGRESS_UPSTREAM_CA` (added to, never
replacing, the system bundle): `upstream_bundle` writes the combination next to the CA.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs

from chiron.private_files import write_new_file

BASENAME = "mitmproxy"
KEY_FILE = f"{BASENAME}-ca.pem"
CERT_FILE = f"{BASENAME}-ca-cert.pem"
DHPARAM_FILE = f"{BASENAME}-dhparam.pem"
UPSTREAM_BUNDLE_FILE = "upstream-trust.pem"
_KEY_BITS = 2048
_ORGANIZATION = "Chiron egress proxy"


class EgressCAError(Exception):
    """The CA directory cannot be used; the message says why (never key material)."""


@dataclass(frozen=True)
class EgressCA:
    directory: Path

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_path(self) -> Path:
        """The certificate alone: what sandboxes trust."""
        return self.directory / CERT_FILE

    @classmethod
    def ensure(cls, directory: Path) -> EgressCA:
        """Use the CA in `directory`, generating it first if there is none."""
        ca = cls(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if not ca.key_path.exists():
            ca._generate()
        ca._check()
        return ca

    def _generate(self) -> None:
        key, cert = certs.create_ca(
            organization=_ORGANIZATION, cn=f"{_ORGANIZATION} CA", key_size=_KEY_BITS
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        for leftover in (self.directory / DHPARAM_FILE, self.cert_path):
            leftover.unlink(missing_ok=True)  # from a start that died half-way
        write_new_file(self.directory / DHPARAM_FILE, certs.DEFAULT_DHPARAM, 0o644)
        write_new_file(self.cert_path, cert_pem, 0o644)
        # Last: its presence means the CA is complete.
        write_new_file(self.key_path, key_pem + cert_pem, 0o600)

    def _check(self) -> None:
        mode = self.key_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise EgressCAError(
                f"{self.key_path} is readable by others (mode {mode:o}): chmod 600 it"
            )
        try:
            key_cert = x509.load_pem_x509_certificate(self.key_path.read_bytes())
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise EgressCAError(f"the egress CA in {self.directory} is unreadable: {exc}") from None
        if key_cert != cert:
            raise EgressCAError(f"{self.cert_path} is not the certificate of {self.key_path}")

    def upstream_bundle(self, extra_ca: Path | None) -> Path | None:
        """A bundle of the system CAs plus `extra_ca`; None (mitmproxy's default) without one."""
        if extra_ca is None:
            return None
        try:
            extra = extra_ca.read_bytes()
        except OSError as exc:
            raise EgressCAError(f"CHIRON_EGRESS_UPSTREAM_CA {extra_ca}: {exc.strerror}") from None
        try:
            x509.load_pem_x509_certificates(extra)
        except ValueError:
            raise EgressCAError(
                f"CHIRON_EGRESS_UPSTREAM_CA {extra_ca} holds no PEM certificate"
            ) from None
        bundle = _system_bundle() + b"\n" + extra
        path = self.directory / UPSTREAM_BUNDLE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        write_new_file(tmp, bundle, 0o644)
        os.replace(tmp, path)
        return path


def _system_bundle() -> bytes:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            with open(candidate, "rb") as bundle:
                return bundle.read()
    import certifi  # mitmproxy's own default

    with open(certifi.where(), "rb") as bundle:
        return bundle.read()
