"""Which URL and token the CLI uses, and the errors when it has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from chiron.cli.connection import load_cli_settings, local_base_url, resolve_connection
from chiron.cli.errors import ConfigError
from chiron.settings import Settings


def test_url_defaults_to_the_listen_address_and_wildcards_dial_loopback(tmp_path: Path) -> None:
    assert local_base_url(Settings(home=tmp_path, listen="127.0.0.1:9")) == "http://127.0.0.1:9"
    assert local_base_url(Settings(home=tmp_path, listen="0.0.0.0:80")) == "http://127.0.0.1:80"
    assert local_base_url(Settings(home=tmp_path, listen="[::]:81")) == "http://[::1]:81"


def test_token_precedence_env_then_setting_then_key_file(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("from-file\n")
    settings = Settings(home=tmp_path, admin_api_key=SecretStr("from-setting"))
    env = {"CHIRON_API_KEY": "from-env", "CHIRON_URL": "https://chiron.example/"}
    first = resolve_connection(settings, env)
    assert (first.base_url, first.token, first.token_source) == (
        "https://chiron.example",
        "from-env",
        "CHIRON_API_KEY",
    )
    assert resolve_connection(settings, {}).token == "from-setting"
    from_file = resolve_connection(Settings(home=tmp_path), {})
    assert (from_file.token, from_file.token_source) == ("from-file", str(tmp_path / "admin.key"))


def test_no_key_anywhere_names_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set CHIRON_API_KEY, or start the server once"):
        resolve_connection(Settings(home=tmp_path), {})
    with pytest.raises(ConfigError, match="CHIRON_URL must start with http"):
        resolve_connection(
            Settings(home=tmp_path), {"CHIRON_URL": "ftp://x", "CHIRON_API_KEY": "k"}
        )


def test_a_bad_setting_becomes_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHIRON_LISTEN", "nowhere")
    with pytest.raises(ConfigError) as caught:
        load_cli_settings()
    assert "CHIRON_LISTEN" in caught.value.message and "\n" not in caught.value.message
