"""`chiron doctor`: ✓/✗ per check, exit 1 only when a required one fails, and no side effects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chiron.cli.main import app
from tests.cli.conftest import cli_env
from tests.conftest import ADMIN_KEY, RunningServer, free_port


def doctor(home: Path, url: str, token: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor"], env=cli_env(url, home, token))
    return result.exit_code, result.stdout


def test_fresh_machine_passes_with_bwrap_working_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out = doctor(home, f"http://127.0.0.1:{free_port()}")
    assert code == 0, out
    assert "✓ bubblewrap sandboxing" in out and "works" in out
    assert "✓ Python ≥ 3.11" in out
    assert "✓ SQLite JSON functions" in out and "has json_each" in out
    assert "! server reachable — nothing answers" in out
    assert not home.exists()


def test_loose_permissions_fail_the_required_checks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "admin.key").write_text("k\n")
    (home / "admin.key").chmod(0o644)
    code, out = doctor(home, f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "✗ CHIRON_HOME private and writable" in out and "expected 0700" in out
    assert "✗ admin key" in out and "expected 0600" in out


@pytest.mark.slow
async def test_reports_database_server_and_key_of_a_running_server(server: RunningServer) -> None:
    home = server.settings.home
    env = cli_env(server.base_url, home, ADMIN_KEY)
    env["CHIRON_DATABASE_URL"] = server.settings.resolved_database_url
    result = await asyncio.to_thread(CliRunner().invoke, app, ["doctor"], env=env)
    assert result.exit_code == 0, result.output
    assert "✓ database reachable" in result.stdout
    assert f"✓ server reachable — {server.base_url} is ready" in result.stdout
    assert "✓ API key accepted — CHIRON_API_KEY" in result.stdout
