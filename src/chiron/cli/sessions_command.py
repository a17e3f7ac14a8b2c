"""`chiron sessions`: the newest sessions as a table."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from chiron.cli.client import ChironClient, JsonObject
from chiron.cli.connection import load_cli_settings, resolve_connection
from chiron.cli.console import local_time, make_consoles


class SessionStatus(StrEnum):
    idle = "idle"
    executing = "executing"
    failed = "failed"
    archived = "archived"


_STATUS_STYLE = {"idle": "green", "executing": "cyan", "failed": "red", "archived": "dim"}


def sessions(
    limit: Annotated[
        int, typer.Option(min=1, max=500, metavar="N", help="How many sessions to show.")
    ] = 20,
    status: Annotated[
        SessionStatus | None, typer.Option(help="Only sessions in this state.")
    ] = None,
) -> None:
    """List sessions, newest first."""
    connection = resolve_connection(load_cli_settings())
    consoles = make_consoles()

    async def fetch() -> JsonObject:
        async with ChironClient(connection) as client:
            return await client.list_sessions(limit=limit, status=status.value if status else None)

    with consoles.err.status("loading sessions"):
        answer = asyncio.run(fetch())
    rows = [s for s in answer.get("sessions", []) if isinstance(s, dict)]
    if not rows:
        consoles.err.print("no sessions" + (f" with status {status.value}" if status else ""))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("THREAD KEY", "STATUS", "HARNESS", "TITLE", "LAST ACTIVE", "CREATED"):
        table.add_column(column, overflow="fold")
    for session in rows:
        state = str(session.get("status", ""))
        table.add_row(
            Text(str(session.get("thread_key", ""))),
            Text(state, style=_STATUS_STYLE.get(state, "")),
            Text(str(session.get("harness_type", ""))),
            Text(str(session.get("title") or "")),
            Text(local_time(session.get("last_active_at"))),
            Text(local_time(session.get("created_at"))),
        )
    consoles.out.print(table)
    if answer.get("next_cursor"):
        consoles.err.print(Text(f"showing the newest {limit}; raise --limit for more", style="dim"))
