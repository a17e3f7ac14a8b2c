"""`chiron chat`: one turn from the command line, or an interactive conversation."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.prompt import Prompt
from rich.text import Text

from chiron.cli.client import ChironClient
from chiron.cli.connection import Connection, load_cli_settings, resolve_connection
from chiron.cli.console import Consoles, make_consoles, print_error
from chiron.cli.errors import AuthRejected, CliError
from chiron.cli.turn_renderer import TurnResult
from chiron.cli.turn_runner import ensure_session, new_thread_key, run_turn

EXIT_COMMANDS = frozenset({"/exit", "/quit"})


def chat(
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="TEXT",
            help="Run this one turn and exit; without it, start an interactive chat.",
        ),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            "-t",
            metavar="KEY",
            help="Thread key to talk in (default: a new cli:<random>).",
        ),
    ] = None,
    harness: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Harness of a new session (default: CHIRON_DEFAULT_HARNESS, `shell`).",
        ),
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Refuse to continue a thread that already exists.")
    ] = False,
) -> None:
    """Talk to the agent: stream its work live, then show its answer.

    One-shot exit status: 0 if the turn completed, 1 if it failed or was cancelled.
    """
    settings = load_cli_settings()
    connection = resolve_connection(settings)
    consoles = make_consoles()
    thread_key = thread or new_thread_key()
    harness_type = harness or settings.default_harness
    if text is not None:
        result = asyncio.run(_one_shot(connection, consoles, thread_key, harness_type, text, new))
        raise typer.Exit(_exit_code(result))
    _repl(connection, consoles, thread_key, harness_type, new)


def _exit_code(result: TurnResult) -> int:
    if result.status == "detached":
        return 130
    return 0 if result.ok else 1


async def _one_shot(
    connection: Connection,
    consoles: Consoles,
    thread_key: str,
    harness: str,
    text: str,
    require_new: bool,
) -> TurnResult:
    async with ChironClient(connection) as client:
        await ensure_session(client, thread_key, harness, require_new=require_new)
        consoles.err.print(Text(f"thread {thread_key}", style="dim"), soft_wrap=True)
        return await run_turn(client, consoles, thread_key, text)


def _repl(
    connection: Connection, consoles: Consoles, thread_key: str, harness: str, require_new: bool
) -> None:
    # One event loop (and one connection pool) for the whole conversation; the prompt itself
    # runs outside it so Ctrl-C at the prompt is a plain KeyboardInterrupt.
    with asyncio.Runner() as runner:
        client = ChironClient(connection)
        try:
            runner.run(ensure_session(client, thread_key, harness, require_new=require_new))
            consoles.err.print(
                Text.assemble(
                    ("thread ", "dim"),
                    (thread_key, "bold"),
                    (f" · harness {harness} · /exit quits · Ctrl-C interrupts a turn", "dim"),
                ),
                soft_wrap=True,
            )
            while (text := _ask(consoles)) is not None:
                try:
                    runner.run(run_turn(client, consoles, thread_key, text))
                except AuthRejected:
                    raise
                except CliError as exc:
                    print_error(consoles.err, exc.message)
        finally:
            runner.run(client.aclose())


def _ask(consoles: Consoles) -> str | None:
    """The next message, or None when the person wants to leave."""
    while True:
        try:
            text = Prompt.ask("[bold cyan]you[/]", console=consoles.err).strip()
        except (KeyboardInterrupt, EOFError):
            consoles.err.print()
            return None
        if text in EXIT_COMMANDS:
            return None
        if text:
            return text
