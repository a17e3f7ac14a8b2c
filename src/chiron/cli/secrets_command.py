"""`chiron secrets`, `chiron grants`, `chiron roles`, `chiron audit`: the credential registry.

Admin key only. A secret's value is read from stdin (`--value-stdin`) or a hidden prompt, never
from the command line (argv is visible to every process on the machine), and is never printed:
lists show a keyed fingerprint instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from chiron.cli.client import ChironClient, JsonObject
from chiron.cli.connection import load_cli_settings, resolve_connection
from chiron.cli.console import local_time, make_consoles
from chiron.cli.errors import CliError

secrets_app = typer.Typer(
    help="Declare, list and remove secrets (values are write-only).", no_args_is_help=True
)
grants_app = typer.Typer(help="Grant secrets to principals or roles.", no_args_is_help=True)
roles_app = typer.Typer(help="Roles, and which principals have them.", no_args_is_help=True)

T = TypeVar("T")

# Fields that hold the value itself: accepted only from stdin or the prompt.
_VALUE_FIELDS = {"value", "secret_access_key", "client_secret"}


class SecretType(StrEnum):
    http = "http"
    hmac_sign = "hmac_sign"
    aws_auth = "aws_auth"
    oauth_token = "oauth_token"
    brokered_token = "brokered_token"


class Mode(StrEnum):
    REPLACE = "replace"
    INJECT = "inject"


def _call(action: Callable[[ChironClient], Awaitable[T]]) -> T:
    connection = resolve_connection(load_cli_settings())

    async def run() -> T:
        async with ChironClient(connection) as client:
            return await action(client)

    return asyncio.run(run())


def _segment(text: str) -> str:
    return quote(text, safe=":@")


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# -- secrets -------------------------------------------------------------------------------------


@secrets_app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Env-var-like: GITHUB_TOKEN.")],
    secret_type: Annotated[SecretType, typer.Option("--type", help="The kind of secret.")] = (
        SecretType.http
    ),
    host: Annotated[
        list[str] | None,
        typer.Option("--host", metavar="HOST", help="api.example.com or *.example.com (repeat)."),
    ] = None,
    mode: Annotated[
        Mode | None, typer.Option(help="replace: the sandbox holds a placeholder; inject: none.")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", metavar="NAME", help="replace: header to swap in (repeat)."),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option("--query", metavar="NAME", help="replace: query param to swap in (repeat)."),
    ] = None,
    placeholder: Annotated[
        str | None, typer.Option(help="replace: what the sandbox holds (default: NAME).")
    ] = None,
    inject_header: Annotated[
        str | None, typer.Option(metavar="NAME", help="inject: header to set.")
    ] = None,
    inject_query: Annotated[
        str | None, typer.Option(metavar="NAME", help="inject: query param to set.")
    ] = None,
    formatter: Annotated[
        str | None,
        typer.Option("--format", metavar="TEXT", help="inject: e.g. 'Bearer {value}'."),
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", metavar="VERB", help="Only these (repeat).")
    ] = None,
    path: Annotated[
        list[str] | None, typer.Option("--path", metavar="PREFIX", help="Only under these.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            metavar="KEY=VALUE",
            help="Any other field, VALUE as JSON or text: --option 'regions=[\"us-east-1\"]'.",
        ),
    ] = None,
    value_stdin: Annotated[
        bool, typer.Option("--value-stdin", help="Read the value from stdin (else: prompt).")
    ] = False,
    keep_value: Annotated[
        bool, typer.Option("--keep-value", help="Change the declaration, keep the stored value.")
    ] = False,
) -> None:
    """Create or replace a secret. The value comes from stdin or a hidden prompt."""
    declaration: dict[str, Any] = {
        "type": secret_type.value,
        "hosts": host or None,
        "mode": mode.value if mode else None,
        "match_headers": header or None,
        "match_query": query or None,
        "placeholder": placeholder,
        "inject_header": inject_header,
        "inject_query": inject_query,
        "inject_formatter": formatter,
        "methods": method or None,
        "paths": path or None,
    }
    declaration.update(_options(option or []))
    if value_stdin and keep_value:
        raise CliError("give --value-stdin or --keep-value, not both")
    if not keep_value:
        declaration["value"] = _read_value(name, from_stdin=value_stdin)
    body = {k: v for k, v in declaration.items() if v is not None}
    answer = _call(lambda c: c.request("PUT", f"/api/secrets/{_segment(name)}", body=body))
    secret = answer.get("secret", {})
    verb = "created" if answer.get("created") else "replaced"
    mode_text = f", {secret.get('mode')}" if secret.get("mode") else ""
    make_consoles().err.print(
        Text(
            f"{verb} secret {name} ({secret.get('type')}{mode_text}) for "
            f"{', '.join(secret.get('hosts', []))}; fingerprint {secret.get('fingerprint')}",
            style="green",
        ),
        soft_wrap=True,
    )


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--option takes KEY=VALUE, got {key or pair!r}")
        if key in _VALUE_FIELDS:
            raise CliError("the value is read from stdin or a hidden prompt, never from options")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def _read_value(name: str, *, from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    else:
        value = typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    if not value:
        raise CliError("no value given")
    return value


@secrets_app.command("list")
def list_secrets() -> None:
    """List secrets: name, type, hosts and fingerprint (never the value)."""
    consoles = make_consoles()
    answer = _call(lambda c: c.request("GET", "/api/secrets"))
    secrets = [s for s in answer.get("secrets", []) if isinstance(s, dict)]
    if not secrets:
        consoles.err.print("no secrets")
        return
    table = _table("NAME", "TYPE", "MODE", "HOSTS", "FINGERPRINT", "UPDATED")
    for secret in secrets:
        table.add_row(
            Text(str(secret.get("name", "")), style="bold"),
            Text(str(secret.get("type", ""))),
            Text(str(secret.get("mode") or "")),
            Text(", ".join(str(h) for h in secret.get("hosts", []))),
            Text(str(secret.get("fingerprint", "")), style="dim"),
            Text(local_time(secret.get("updated_at"))),
        )
    consoles.out.print(table)


@secrets_app.command("rm")
def remove_secret(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The secret to delete.")],
) -> None:
    """Delete a secret; its grants go with it."""
    answer = _call(lambda c: c.request("DELETE", f"/api/secrets/{_segment(name)}"))
    make_consoles().err.print(
        Text(f"removed secret {name} and {answer.get('removed_grants', 0)} grants", style="green")
    )


@secrets_app.command("effective")
def effective(
    principal_id: Annotated[str, typer.Argument(metavar="PRINCIPAL", help="e.g. prn_….")],
) -> None:
    """Print what a principal's egress proxy applies (JSON, no values) and its hash."""
    answer = _call(
        lambda c: c.request("GET", f"/api/principals/{_segment(principal_id)}/effective")
    )
    make_consoles().out.print_json(json.dumps(answer.get("effective", {})))


# -- grants --------------------------------------------------------------------------------------


PrincipalOption = Annotated[
    str | None, typer.Option("--principal", metavar="ID", help="A principal id (prn_…).")
]
RoleOption = Annotated[str | None, typer.Option("--role", metavar="ROLE", help="A role name.")]
SecretArgument = Annotated[str, typer.Argument(metavar="SECRET", help="The secret's name.")]


def _subject(principal: str | None, role: str | None) -> tuple[dict[str, str], str]:
    if (principal is None) == (role is None):
        raise CliError("give exactly one of --principal and --role")
    if principal is not None:
        return {"principal_id": principal}, f"principal {principal}"
    assert role is not None
    return {"role": role}, f"role {role}"


@grants_app.command("add")
def add_grant(
    secret: SecretArgument,
    principal: PrincipalOption = None,
    role: RoleOption = None,
    priority: Annotated[
        int, typer.Option(help="Higher wins when two secrets set the same header on a host.")
    ] = 0,
) -> None:
    """Let a principal or a role use a secret (again: sets the priority)."""
    subject, described = _subject(principal, role)
    body = {"secret": secret, "priority": priority, **subject}
    answer = _call(lambda c: c.request("POST", "/api/grants", body=body))
    verb = "granted" if answer.get("created") else "updated grant of"
    make_consoles().err.print(
        Text(f"{verb} {secret} to {described} (priority {priority})", style="green")
    )


@grants_app.command("rm")
def remove_grant(
    secret: SecretArgument, principal: PrincipalOption = None, role: RoleOption = None
) -> None:
    """Take a secret away from a principal or a role."""
    subject, described = _subject(principal, role)
    body = {"secret": secret, **subject}
    answer = _call(lambda c: c.request("DELETE", "/api/grants", body=body))
    consoles = make_consoles()
    if answer.get("removed"):
        consoles.err.print(Text(f"removed grant of {secret} to {described}", style="green"))
    else:
        consoles.err.print(f"{described} had no grant of {secret}")


@grants_app.command("list")
def list_grants(
    secret: Annotated[str | None, typer.Option("--secret", metavar="NAME")] = None,
    principal: PrincipalOption = None,
    role: RoleOption = None,
) -> None:
    """List grants, optionally only one secret's, principal's or role's."""
    consoles = make_consoles()
    params = {"secret": secret, "principal_id": principal, "role": role}
    answer = _call(lambda c: c.request("GET", "/api/grants", params=params))
    grants = [g for g in answer.get("grants", []) if isinstance(g, dict)]
    if not grants:
        consoles.err.print("no grants")
        return
    table = _table("SECRET", "TO", "PRIORITY", "UPDATED")
    for grant in grants:
        to = f"role {grant['role']}" if grant.get("role") else str(grant.get("principal_id"))
        table.add_row(
            Text(str(grant.get("secret", "")), style="bold"),
            Text(to),
            Text(str(grant.get("priority", 0))),
            Text(local_time(grant.get("updated_at"))),
        )
    consoles.out.print(table)


# -- roles ---------------------------------------------------------------------------------------


@roles_app.command("set")
def set_role(
    name: Annotated[str, typer.Argument(metavar="ROLE")],
    description: Annotated[str | None, typer.Option(help="What the role is for.")] = None,
) -> None:
    """Create a role (or change its description)."""
    answer = _call(
        lambda c: c.request(
            "PUT", f"/api/roles/{_segment(name)}", body={"description": description}
        )
    )
    verb = "created" if answer.get("created") else "updated"
    make_consoles().err.print(Text(f"{verb} role {name}", style="green"))


@roles_app.command("assign")
def assign_role(
    role: Annotated[str, typer.Argument(metavar="ROLE")],
    principal: Annotated[str, typer.Option("--principal", metavar="ID")],
) -> None:
    """Give a principal a role."""
    path = f"/api/principals/{_segment(principal)}/roles/{_segment(role)}"
    answer = _call(lambda c: c.request("PUT", path))
    roles = ", ".join(str(r) for r in answer.get("roles", []))
    make_consoles().err.print(Text(f"{principal} now has roles: {roles}", style="green"))


@roles_app.command("unassign")
def unassign_role(
    role: Annotated[str, typer.Argument(metavar="ROLE")],
    principal: Annotated[str, typer.Option("--principal", metavar="ID")],
) -> None:
    """Take a role away from a principal."""
    path = f"/api/principals/{_segment(principal)}/roles/{_segment(role)}"
    answer = _call(lambda c: c.request("DELETE", path))
    roles = ", ".join(str(r) for r in answer.get("roles", [])) or "none"
    make_consoles().err.print(Text(f"{principal} now has roles: {roles}", style="green"))


# -- audit ---------------------------------------------------------------------------------------


def audit(
    thread: Annotated[
        str | None, typer.Option("--thread", metavar="KEY", help="Only this thread's sandbox.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="How many.")] = 50,
    since: Annotated[
        str | None, typer.Option(metavar="TIME", help="RFC 3339, e.g. 2026-01-31T09:00:00Z.")
    ] = None,
) -> None:
    """Egress requests of sandboxes (newest last): host, status, which secrets were used."""
    consoles = make_consoles()
    params = {"thread_key": thread, "limit": limit, "since": since}
    answer: JsonObject = _call(lambda c: c.request("GET", "/api/audit", params=params))
    records = [r for r in answer.get("records", []) if isinstance(r, dict)]
    if not records:
        consoles.err.print("no egress records")
        return
    table = _table("TIME", "THREAD", "REQUEST", "STATUS", "SECRETS")
    for record in reversed(records):
        status = record.get("status")
        request = f"{record.get('method', '')} {record.get('host', '')}{record.get('path', '')}"
        table.add_row(
            Text(local_time(record.get("time"))),
            Text(str(record.get("thread_key") or "")),
            Text(request),
            Text(str(status or "-"), style="red" if not status or status >= 400 else ""),
            Text(", ".join(str(s) for s in record.get("secret_names", []))),
        )
    consoles.out.print(table)
