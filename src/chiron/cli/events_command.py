"""`chiron events`: print a session's event log, or tail it live."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from chiron.cli.client import ChironClient
from chiron.cli.connection import load_cli_settings, resolve_connection
from chiron.cli.console import Consoles, make_consoles
from chiron.cli.event_stream import OUTPUT_LINE, ReconnectPolicy, StreamEvent

PAGE_LIMIT = 1000


def events(
    thread_key: Annotated[
        str, typer.Argument(metavar="THREAD_KEY", help="The session's thread key, e.g. cli:7f3a.")
    ],
    after: Annotated[
        int, typer.Option("--after", min=0, metavar="N", help="Start after this event id.")
    ] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep tailing new events (reconnecting).")
    ] = False,
    execution: Annotated[
        str | None, typer.Option("--execution", metavar="ID", help="Only this execution's events.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of a table.")
    ] = False,
) -> None:
    """Print events (id, type, payload). With --follow on one --execution, stops at its end."""
    connection = resolve_connection(load_cli_settings())
    consoles = make_consoles()
    client = ChironClient(connection)
    if not follow:
        asyncio.run(_dump(client, consoles, thread_key, after, execution, as_json))
        return
    try:
        asyncio.run(_tail(client, consoles, thread_key, after, execution, as_json))
    except KeyboardInterrupt:
        # Ctrl-C is how a person ends a tail: no "Aborted!", the conventional 130.
        raise typer.Exit(130) from None


async def _dump(
    client: ChironClient,
    consoles: Consoles,
    thread_key: str,
    after: int,
    execution_id: str | None,
    as_json: bool,
) -> None:
    async with client:
        cursor = after
        while True:
            page = await client.events_page(
                thread_key, after=cursor, execution_id=execution_id, wait=0, limit=PAGE_LIMIT
            )
            batch = [StreamEvent.from_json(e) for e in page.get("events", [])]
            for event in batch:
                print_event(consoles.out, event, as_json=as_json)
            if not batch:
                return
            cursor = int(page.get("last_event_id", batch[-1].event_id))


async def _tail(
    client: ChironClient,
    consoles: Consoles,
    thread_key: str,
    after: int,
    execution_id: str | None,
    as_json: bool,
) -> None:
    def reconnecting(attempt: int, delay: float, problem: str) -> None:
        consoles.err.print(
            Text(f"stream dropped ({problem}); resuming in {delay:.1f}s (#{attempt})", style="dim")
        )

    async with client:
        follower = client.follow_events(
            thread_key,
            after=after,
            execution_id=execution_id,
            # A person watching decides when to stop; keep retrying for as long as they wait.
            policy=ReconnectPolicy(give_up_after=None),
            on_reconnect=reconnecting,
        )
        async with aclosing(follower.events()) as stream:
            async for event in stream:
                print_event(consoles.out, event, as_json=as_json)


def print_event(console: Console, event: StreamEvent, *, as_json: bool) -> None:
    if as_json:
        record = {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "execution_id": event.execution_id,
            "payload": event.payload,
        }
        console.out(json.dumps(record, ensure_ascii=False), highlight=False)
        return
    payload = event.payload if isinstance(event.payload, str) else json.dumps(event.payload)
    style = "cyan" if event.event_type == OUTPUT_LINE else "bold"
    console.print(
        Text.assemble((f"{event.event_id:>6} ", "dim"), (event.event_type, style), " ", payload),
        soft_wrap=True,
    )
