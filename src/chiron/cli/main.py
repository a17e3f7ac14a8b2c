"""The `chiron` command: assembles the subcommands and turns expected failures into one line."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from chiron.cli import (
    chat_command,
    doctor_command,
    events_command,
    keys_command,
    secrets_command,
    sessions_command,
    up_command,
)
from chiron.cli.console import make_consoles, print_error
from chiron.cli.errors import CliError


class _ErrorReportingGroup(TyperGroup):
    """Every subcommand runs inside this `main`: the one place CLI errors become exits.

    Both the console script and typer's test runner enter through `main`, and an exception
    the command framework does not know passes through it untouched.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except CliError as exc:
            _exit_with(exc)


def _exit_with(exc: CliError) -> NoReturn:
    print_error(make_consoles().err, exc.message)
    sys.exit(exc.exit_code)


app = typer.Typer(
    name="chiron",
    cls=_ErrorReportingGroup,
    help="Chiron: one shared AI agent for a team, every conversation in its own sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("up")(up_command.up)
app.command("chat")(chat_command.chat)
app.command("sessions")(sessions_command.sessions)
app.command("events")(events_command.events)
app.command("doctor")(doctor_command.doctor)
app.add_typer(keys_command.app, name="keys")
app.add_typer(secrets_command.secrets_app, name="secrets")
app.add_typer(secrets_command.grants_app, name="grants")
app.add_typer(secrets_command.roles_app, name="roles")
app.command("audit")(secrets_command.audit)
