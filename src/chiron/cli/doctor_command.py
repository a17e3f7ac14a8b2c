"""`chiron doctor`: print one ✓/✗ line per check; exit 1 if a required check failed."""

from __future__ import annotations

import asyncio

import typer
from rich.text import Text

from chiron.cli import doctor_checks as checks
from chiron.cli.connection import (
    Connection,
    load_cli_settings,
    local_base_url,
    resolve_connection,
)
from chiron.cli.console import make_consoles
from chiron.cli.errors import ConfigError
from chiron.settings import Settings


def doctor() -> None:
    """Check bubblewrap, tools, CHIRON_HOME, the admin key, the database and the server."""
    settings = load_cli_settings()
    consoles = make_consoles()
    with consoles.err.status("checking"):
        results = [
            checks.check_python(),
            checks.check_sqlite_json(settings),
            checks.check_bwrap(settings),
            checks.check_setpriv(),
            checks.check_socat(),
            checks.check_home(settings),
            checks.check_admin_key(settings),
            checks.check_model_sdks(settings),
            *checks.check_harness_clis(settings),
            *asyncio.run(_async_checks(settings)),
        ]
    for result in results:
        if result.ok:
            mark = Text("✓ ", style="bold green")
        elif result.required:
            mark = Text("✗ ", style="bold red")
        else:
            mark = Text("! ", style="bold yellow")
        consoles.out.print(
            Text.assemble(mark, (result.name, "bold"), (" — ", "dim"), result.detail),
            soft_wrap=True,
        )
    failed = [r for r in results if r.required and not r.ok]
    if failed:
        consoles.err.print(
            Text(f"{len(failed)} required check(s) failed", style="bold red"), soft_wrap=True
        )
        raise typer.Exit(1)


async def _async_checks(settings: Settings) -> list[checks.CheckResult]:
    connection: Connection | None
    try:
        connection = resolve_connection(settings)
        base_url = connection.base_url
    except ConfigError:
        # No key yet is normal before the first start; readiness needs none.
        connection, base_url = None, local_base_url(settings)
    database = await checks.check_database(settings)
    return [database, *await checks.check_server(connection, base_url)]
