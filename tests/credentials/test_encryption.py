"""Values at rest: AES-GCM round trips; the key file is made 0600 once and reused; a wrong key
fails naming the problem."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from chiron.credentials import SecretBox, SecretsKeyError, load_secret_box
from chiron.credentials.encryption import Sealed, decode_key, load_or_create_key_file
from chiron.settings import Settings

VALUE = "ghp_the-real-value-0123456789"


def test_round_trip_and_fresh_nonces() -> None:
    key = os.urandom(32)
    box = SecretBox(key)
    first, second = box.seal("TOKEN", VALUE), box.seal("TOKEN", VALUE)
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext
    assert VALUE.encode() not in first.ciphertext
    assert box.open("TOKEN", first) == VALUE == box.open("TOKEN", second)
    assert key.hex() not in repr(box) and base64.b64encode(key).decode() not in repr(box)


def test_a_ciphertext_moved_to_another_name_does_not_open() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal("TOKEN", VALUE)
    with pytest.raises(SecretsKeyError, match="corrupt or was copied"):
        box.open("OTHER", sealed)
    tampered = Sealed(
        sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]), sealed.nonce, sealed.key_id
    )
    with pytest.raises(SecretsKeyError):
        box.open("TOKEN", tampered)


def test_a_wrong_key_fails_clearly() -> None:
    sealed = SecretBox(os.urandom(32)).seal("TOKEN", VALUE)
    wrong = SecretBox(os.urandom(32), source="CHIRON_SECRETS_KEY")
    with pytest.raises(SecretsKeyError) as caught:
        wrong.open("TOKEN", sealed)
    message = str(caught.value)
    assert "secret TOKEN was encrypted with key" in message and "CHIRON_SECRETS_KEY" in message
    assert VALUE not in message


def test_fingerprints_are_keyed_and_short() -> None:
    key = os.urandom(32)
    one, other = SecretBox(key), SecretBox(os.urandom(32))
    assert one.fingerprint(VALUE) == SecretBox(key).fingerprint(VALUE)
    assert one.fingerprint(VALUE) != other.fingerprint(VALUE)
    assert one.fingerprint(VALUE) != one.fingerprint(VALUE + "x")
    assert len(one.fingerprint(VALUE)) == 8 and int(one.fingerprint(VALUE), 16) >= 0


def test_key_file_is_created_0600_once_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = load_secret_box(settings)
    path = tmp_path / "home" / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    created = path.stat().st_mtime_ns, path.read_text()
    again = load_secret_box(settings)
    assert again.key_id == first.key_id and (path.stat().st_mtime_ns, path.read_text()) == created
    sealed = first.seal("TOKEN", VALUE)
    assert again.open("TOKEN", sealed) == VALUE
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.key"]


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    load_or_create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(SecretsKeyError, match="chmod 600"):
        load_or_create_key_file(path)


def test_configured_key_wins_and_bad_ones_name_the_setting(tmp_path: Path) -> None:
    key = os.urandom(32)
    settings = Settings(home=tmp_path, secrets_key=SecretStr(base64.b64encode(key).decode()))
    assert load_secret_box(settings).key_id == SecretBox(key).key_id
    assert not (tmp_path / "secrets.key").exists()
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(
        SecretsKeyError, match="CHIRON_SECRETS_KEY must be base64 of 32 bytes, got 16"
    ):
        load_secret_box(Settings(home=tmp_path, secrets_key=SecretStr(short)))
    with pytest.raises(SecretsKeyError, match="CHIRON_SECRETS_KEY is not valid base64") as caught:
        load_secret_box(Settings(home=tmp_path, secrets_key=SecretStr("not base64 at all!")))
    assert "not base64 at all" not in str(caught.value)
    assert decode_key(base64.urlsafe_b64encode(key).decode(), "k") == key
