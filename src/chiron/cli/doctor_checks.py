"""The checks behind `chiron doctor`: can this machine run Chiron, and is the server up?

Each check only looks: none creates the home directory, the database or the admin key, so
running the doctor before the first `chiron up` changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from chiron.cli.client import ChironClient
from chiron.cli.connection import Connection
from chiron.cli.errors import CliError
from chiron.settings import Settings

BWRAP_PROBE = (
    "bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
    "--unshare-all", "true",
)  # fmt: skip
PROBE_TIMEOUT_S = 10.0
DATABASE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    # A failed optional check warns; a failed required one makes the doctor exit 1.
    required: bool = True


def check_python() -> CheckResult:
    version = ".".join(str(part) for part in sys.version_info[:3])
    return CheckResult("Python ≥ 3.11", sys.version_info >= (3, 11), f"Python {version}")


def check_sqlite_json(settings: Settings) -> CheckResult:
    name = "SQLite JSON functions"
    if not settings.resolved_database_url.startswith("sqlite"):
        return CheckResult(name, True, "not needed: the database is PostgreSQL")
    from chiron.store.engine import sqlite_json_problem

    problem = sqlite_json_problem()
    if problem is not None:
        return CheckResult(name, False, problem)
    import sqlite3

    return CheckResult(name, True, f"SQLite {sqlite3.sqlite_version} has json_each")


def check_bwrap(settings: Settings) -> CheckResult:
    name = "bubblewrap sandboxing"
    required = settings.sandbox_isolation == "bwrap"
    path = shutil.which("bwrap")
    if path is None:
        detail = "bwrap not found; install bubblewrap (e.g. apt-get install bubblewrap)"
        if not required:
            detail += "; CHIRON_SANDBOX_ISOLATION=none runs sandboxes without isolation"
        return CheckResult(name, False, detail, required)
    try:
        probe = subprocess.run(
            [path, *BWRAP_PROBE[1:]],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(
            name, False, f"{path} did not finish in {PROBE_TIMEOUT_S:.0f}s", required
        )
    except OSError as exc:
        return CheckResult(name, False, f"cannot run {path}: {exc.strerror}", required)
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else ""
        detail = f"{path} cannot create namespaces here (exit {probe.returncode}) {reason}"
        return CheckResult(name, False, detail.strip(), required)
    return CheckResult(name, True, f"{path} works (--unshare-all)", required)


def check_setpriv() -> CheckResult:
    name = "setpriv (drops root inside sandboxes)"
    path = shutil.which("setpriv")
    if os.geteuid() != 0:
        return CheckResult(name, True, "not needed: not running as root", required=False)
    if path is None:
        return CheckResult(name, False, "setpriv not found; install util-linux")
    return CheckResult(name, True, path)


def check_socat() -> CheckResult:
    path = shutil.which("socat")
    if path is None:
        return CheckResult(
            "socat (egress proxy bridge)", False, "socat not found; install socat", required=False
        )
    return CheckResult("socat (egress proxy bridge)", True, path, required=False)


def check_home(settings: Settings) -> CheckResult:
    home = settings.home
    name = "CHIRON_HOME private and writable"
    if not home.exists():
        return CheckResult(name, True, f"{home} does not exist yet; `chiron up` creates it 0700")
    if not home.is_dir():
        return CheckResult(name, False, f"{home} is not a directory")
    mode = stat.S_IMODE(home.stat().st_mode)
    if not os.access(home, os.W_OK | os.X_OK):
        return CheckResult(name, False, f"{home} is not writable by this user")
    if mode != 0o700:
        return CheckResult(
            name, False, f"{home} has mode {mode:04o}, expected 0700 (chmod 700 {home})"
        )
    return CheckResult(name, True, f"{home} (0700)")


def check_admin_key(settings: Settings) -> CheckResult:
    name = "admin key"
    if settings.admin_api_key is not None:
        return CheckResult(name, True, "from CHIRON_ADMIN_API_KEY")
    path = settings.admin_key_file
    if not path.exists():
        return CheckResult(name, True, f"{path} not created yet; `chiron up` creates it 0600")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != 0o600:
        return CheckResult(
            name, False, f"{path} has mode {mode:04o}, expected 0600 (chmod 600 {path})"
        )
    return CheckResult(name, True, f"{path} (0600)")


async def check_database(settings: Settings) -> CheckResult:
    # SQLAlchemy costs a few hundred ms to import; only this check needs it.
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from chiron.store.engine import Store

    name = "database reachable"
    url = settings.resolved_database_url
    shown = make_url(url).render_as_string(hide_password=True)
    if _sqlite_file_missing(url):
        # Opening it would create the file (and its directory with the wrong mode).
        return CheckResult(name, True, f"{shown} not created yet; `chiron up` creates it")
    store = Store(url, pool_size=1)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S), store.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except TimeoutError:
        return CheckResult(name, False, f"{shown}: no answer in {DATABASE_TIMEOUT_S:.0f}s")
    except Exception as exc:  # any driver error means "not reachable"; show its first line
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return CheckResult(name, False, f"{shown}: {first_line}")
    finally:
        await store.dispose()
    return CheckResult(name, True, shown)


def _sqlite_file_missing(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return url.startswith("sqlite") and not Path(make_url(url).database or "").exists()


async def check_server(connection: Connection | None, base_url: str) -> list[CheckResult]:
    """Readiness, then whether the token is accepted; both optional (the server may be off)."""
    name = "server reachable"
    if connection is None:
        connection = Connection(base_url, "", "no key")
    async with ChironClient(connection, timeout=5.0) as client:
        try:
            status = await client.readyz_status()
        except CliError:
            return [CheckResult(name, False, f"nothing answers at {base_url}", required=False)]
        if status == 503:
            return [CheckResult(name, False, f"{base_url} is still starting", required=False)]
        if status != 200:
            detail = f"{base_url}/readyz answered HTTP {status}; is that a Chiron server?"
            return [CheckResult(name, False, detail, required=False)]
        results = [CheckResult(name, True, f"{base_url} is ready", required=False)]
        if connection.token:
            try:
                await client.list_sessions(limit=1)
                results.append(
                    CheckResult("API key accepted", True, connection.token_source, required=False)
                )
            except CliError as exc:
                results.append(CheckResult("API key accepted", False, exc.message, required=False))
        return results


def check_harness_clis(settings: Settings) -> list[CheckResult]:
    """The codex and claude CLIs the `codex` and `claudecode` harnesses drive (optional)."""
    from chiron.runtime.model_access import default_cli_dir

    folder = settings.harness_cli_dir or default_cli_dir()
    results = []
    for harness, command in (("codex", "codex"), ("claudecode", "claude")):
        name = f"{harness} harness CLI"
        if folder is None or not (folder / ".bin" / command).exists():
            detail = "not installed: run `make setup` (npm ci in harness-clis/) or set "
            detail += "CHIRON_HARNESS_CLI_DIR"
            results.append(CheckResult(name, False, detail, required=False))
            continue
        try:
            probe = subprocess.run(
                [str(folder / ".bin" / command), "--version"],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append(CheckResult(name, False, f"{command} does not start: {exc}", False))
            continue
        version = (probe.stdout or probe.stderr).strip().splitlines()[:1]
        ok = probe.returncode == 0
        detail = version[0] if version else f"exit status {probe.returncode}"
        results.append(CheckResult(name, ok, detail, required=False))
    return results


def check_model_sdks(settings: Settings) -> CheckResult:
    """Whether the sandbox's Python loads the model SDKs the `chiron` harness uses."""
    from chiron.runtime.model_access import sdk_dir

    name = "chiron harness model SDKs"
    code = "import sys; sys.path.insert(0, sys.argv[1]); import openai, anthropic"
    try:
        probe = subprocess.run(
            [str(settings.sandbox_python), "-I", "-S", "-c", code, str(sdk_dir())],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S * 3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(name, False, f"{settings.sandbox_python} failed: {exc}", False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        detail = f"{settings.sandbox_python} cannot import openai/anthropic from {sdk_dir()}: "
        return CheckResult(name, False, detail + last, required=False)
    return CheckResult(name, True, f"openai and anthropic load from {sdk_dir()}", False)
