"""`chiron keys`: front-door API keys scoped to thread-key prefixes (admin key only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from chiron.cli.client import ChironClient
from chiron.cli.connection import load_cli_settings, resolve_connection
from chiron.cli.console import local_time, make_consoles

app = typer.Typer(help="Create, list and revoke front-door API keys.", no_args_is_help=True)

T = TypeVar("T")


def _call(action: Callable[[ChironClient], Awaitable[T]]) -> T:
    connection = resolve_connection(load_cli_settings())

    async def run() -> T:
        async with ChironClient(connection) as client:
            return await action(client)

    return asyncio.run(run())


@app.command("create")
def create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name saying who uses the key, e.g. slack-bot.")
    ],
    prefix: Annotated[
        list[str],
        typer.Option(
            "--prefix",
            "-p",
            metavar="PREFIX",
            help="Thread-key prefix the key may use, e.g. `slack:` (repeatable).",
        ),
    ],
) -> None:
    """Create a key; its token is shown once and only its hash is kept."""
    consoles = make_consoles()
    answer = _call(lambda client: client.create_key(name, prefix))
    key = answer.get("key", {})
    consoles.err.print(
        Text(
            f"created key {key.get('key_id')} ({name}) for {', '.join(prefix)}; "
            "store the token now, it is not shown again:",
            style="green",
        ),
        soft_wrap=True,
    )
    consoles.out.out(str(answer.get("token", "")), highlight=False)


@app.command("list")
def list_keys() -> None:
    """List keys, revoked ones included."""
    consoles = make_consoles()
    keys = _call(lambda client: client.list_keys())
    if not keys:
        consoles.err.print("no keys")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "PREFIXES", "CREATED", "REVOKED"):
        table.add_column(column, overflow="fold")
    for key in keys:
        revoked = local_time(key.get("revoked_at"))
        table.add_row(
            Text(str(key.get("key_id", ""))),
            Text(str(key.get("name", "")), style="dim" if revoked else ""),
            Text(", ".join(str(p) for p in key.get("thread_prefixes", []))),
            Text(local_time(key.get("created_at"))),
            Text(revoked, style="red"),
        )
    consoles.out.print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="The key's id (see `chiron keys list`).")
    ],
) -> None:
    """Revoke a key: requests with its token are refused from now on."""
    _call(lambda client: client.revoke_key(key_id))
    make_consoles().err.print(Text(f"revoked key {key_id}", style="green"))
