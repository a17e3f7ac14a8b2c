"""Secret values at rest: AES-256-GCM under one key, plus a keyed fingerprint for lists.

The key comes from `CHIRON_SECRETS_KEY` (base64 of 32 bytes) or, when that is unset, from
`$CHIRON_HOME/secrets.key`, generated on first start: written to a temporary file opened with
`O_EXCL` and mode 0600, then linked into place, so two processes starting together agree on one
key and no reader ever sees a half-written file. A key file readable by group or others is
refused.

Each value is sealed with a fresh 96-bit nonce and the secret's name as associated data, so a
ciphertext copied onto another row does not decrypt. Rows also carry the key's id (a keyed hash
of nothing secret), so a wrong key is reported as such instead of as a corrupt value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chiron.credentials.errors import SecretsKeyError

if TYPE_CHECKING:
    from chiron.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_NAME = "secrets.key"
_AAD_PREFIX = b"chiron-secret-v1:"


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    key_id: str


class SecretBox:
    """Seals and opens secret values; computes their fingerprints. Never shows its key."""

    __slots__ = ("_aead", "_fingerprint_key", "key_id", "source")

    def __init__(self, key: bytes, *, source: str = "the secrets key") -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"{source} must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # Separate keys derived for separate jobs: the AES key itself is never used as an
        # HMAC key, and neither derived value reveals anything about it.
        self._fingerprint_key = hmac.new(key, b"chiron fingerprint v1", hashlib.sha256).digest()
        self.key_id = hmac.new(key, b"chiron key id v1", hashlib.sha256).hexdigest()[:16]
        self.source = source

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self.key_id!r})"

    def seal(self, name: str, value: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode(), _AAD_PREFIX + name.encode())
        return Sealed(ciphertext=ciphertext, nonce=nonce, key_id=self.key_id)

    def open(self, name: str, sealed: Sealed) -> str:
        if sealed.key_id != self.key_id:
            raise SecretsKeyError(
                f"secret {name} was encrypted with key {sealed.key_id}, but {self.source} is "
                f"key {self.key_id}: start with the key the secrets were stored under"
            )
        try:
            plain = self._aead.decrypt(sealed.nonce, sealed.ciphertext, _AAD_PREFIX + name.encode())
        except InvalidTag:
            raise SecretsKeyError(
                f"secret {name} does not decrypt under {self.source} (key {self.key_id}): "
                "its stored value is corrupt or was copied from another row"
            ) from None
        return plain.decode()

    def fingerprint(self, value: str) -> str:
        """First 8 hex digits of a keyed SHA-256 HMAC: tells values apart, reveals nothing."""
        return hmac.new(self._fingerprint_key, value.encode(), hashlib.sha256).hexdigest()[:8]


def decode_key(text: str, source: str) -> bytes:
    """The 32 key bytes from their base64 text (standard or URL-safe alphabet)."""
    cleaned = text.strip()
    try:
        key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeyError(f"{source} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(
            f"{source} must be base64 of {KEY_BYTES} bytes, got {len(key)} bytes "
            "(make one with: head -c 32 /dev/urandom | base64)"
        )
    return key


def key_file(settings: Settings) -> Path:
    return settings.home / KEY_FILE_NAME


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for this server: the configured key, else the key file (created if absent)."""
    if settings.secrets_key is not None:
        source = "CHIRON_SECRETS_KEY"
        return SecretBox(decode_key(settings.secrets_key.get_secret_value(), source), source=source)
    path = key_file(settings)
    return SecretBox(load_or_create_key_file(path), source=str(path))


def load_or_create_key_file(path: Path) -> bytes:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(key).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            # Another process made the key first: use theirs.
            return _read_key_file(path)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def _read_key_file(path: Path) -> bytes:
    with path.open() as handle:
        mode = os.fstat(handle.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise SecretsKeyError(
                f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            )
        text = handle.read()
    return decode_key(text, str(path))
