"""Settings: every option is documented, and a bad value names what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from chiron.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_described_and_documented(name: str) -> None:
    assert Settings.model_fields[name].description
    assert f"`CHIRON_{name.upper()}`" in README


def test_environment_overrides_and_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHIRON_HOME", str(tmp_path))
    monkeypatch.setenv("CHIRON_LISTEN", "127.0.0.1:9999")
    settings = Settings()
    assert settings.listen_port == 9999
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'chiron.db'}"
    monkeypatch.setenv("CHIRON_LISTEN", "no-port")
    with pytest.raises(ValidationError, match="CHIRON_LISTEN must be host:port"):
        Settings()
    monkeypatch.setenv("CHIRON_LISTEN", "127.0.0.1:1")
    monkeypatch.setenv("CHIRON_DATABASE_URL", "mysql://x")
    with pytest.raises(ValidationError, match="CHIRON_DATABASE_URL"):
        Settings()


def test_chiron_toml_in_home_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHIRON_HOME", str(tmp_path))
    (tmp_path / "chiron.toml").write_text('listen = "127.0.0.1:7000"\n')
    assert Settings().listen == "127.0.0.1:7000"
