"""`chiron up`: the API server in the foreground, optionally followed by a demo turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from rich.text import Text

from chiron.cli.client import ChironClient
from chiron.cli.connection import Connection, load_cli_settings, local_base_url
from chiron.cli.console import Consoles, make_consoles, print_error
from chiron.cli.errors import CliError, ServerUnreachable
from chiron.cli.turn_runner import ensure_session, run_turn
from chiron.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

# Small sleeps between lines make the streaming visible; the rest shows where the turn ran.
DEMO_COMMAND = 'for step in 1 2 3; do echo "step $step of 3"; sleep 0.4; done; uname -a; id; pwd'
READY_TIMEOUT_S = 120.0
# Open SSE streams never end by themselves; cut them this long after a stop was asked for,
# so the lifespan's own drain of running executions can begin.
CONNECTION_GRACE_S = 5


def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Once ready, run one demo turn through the API.")
    ] = False,
) -> None:
    """Run the Chiron API in the foreground until Ctrl-C or SIGTERM."""
    # The server side is imported here, so client commands never load it.
    from chiron.api.app import create_app, tune_interpreter
    from chiron.runtime.control_plane import load_or_create_admin_key
    from chiron.sandbox.backend import SandboxError
    from chiron.structured_logging import configure_logging

    settings = load_cli_settings()
    configure_logging(settings.log_level)
    # The demo's own client shares this process; one INFO line per request of it is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    consoles = make_consoles()
    # Made private before anything else can create it: the store would make the database's
    # directory with the default (world-readable) mode.
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        app = create_app(settings)
    except SandboxError as exc:
        raise CliError(str(exc)) from None
    tune_interpreter()
    key_source = (
        "CHIRON_ADMIN_API_KEY"
        if settings.admin_api_key is not None
        else str(settings.admin_key_file)
    )
    connection = Connection(
        local_base_url(settings), load_or_create_admin_key(settings), key_source
    )
    consoles.err.print(
        Text.assemble(
            ("starting Chiron on ", "bold"),
            (connection.base_url, "bold cyan"),
            ("\nadmin key: ", "dim"),
            key_source,
            ("  (Ctrl-C stops)", "dim"),
        ),
        soft_wrap=True,
    )
    # uvicorn re-raises the SIGINT it handled once it has shut down gracefully.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, app, connection, consoles, demo))
    consoles.err.print(Text("stopped", style="dim"))


async def _serve(
    settings: Settings, app: FastAPI, connection: Connection, consoles: Consoles, demo: bool
) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=CONNECTION_GRACE_S,
    )
    server = uvicorn.Server(config)
    announcer = asyncio.create_task(_when_ready(connection, consoles, demo), name="cli:up:announce")
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits this way when it cannot bind; it has logged why.
        raise CliError(f"cannot listen on {settings.listen}; see the log above") from None
    finally:
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer
    if not server.started:
        raise CliError("the server did not start; see the log above")


async def _when_ready(connection: Connection, consoles: Consoles, demo: bool) -> None:
    async with ChironClient(connection) as client:
        if not await _wait_ready(client):
            message = f"{connection.base_url} not ready after {READY_TIMEOUT_S:.0f}s"
            print_error(consoles.err, message)
            return
        consoles.err.print(
            Text.assemble(("ready: ", "bold green"), connection.base_url), soft_wrap=True
        )
        if not demo:
            return
        try:
            await run_demo(client, consoles)
        except CliError as exc:
            print_error(consoles.err, f"demo turn failed: {exc.message}")
        except Exception:
            logger.exception("demo turn crashed")


async def _wait_ready(client: ChironClient) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(ServerUnreachable):
            if await client.readyz_status() == 200:
                return True
        await asyncio.sleep(0.1)
    return False


async def run_demo(client: ChironClient, consoles: Consoles) -> bool:
    """One shell turn through the public API and SSE, exactly like `chiron chat`."""
    thread_key = f"cli:demo-{secrets.token_hex(3)}"
    consoles.err.print(Text.assemble(("demo turn on thread ", "bold"), thread_key), soft_wrap=True)
    await ensure_session(client, thread_key, "shell")
    # Ctrl-C stays with the server: during `up` it means "stop serving".
    result = await run_turn(client, consoles, thread_key, DEMO_COMMAND, handle_ctrl_c=False)
    # Show the stored record too: what any client reading the execution gets back.
    execution = await client.get_execution(thread_key, result.execution_id)
    consoles.out.print(
        Panel(
            Text(str(execution.get("result_text") or "").rstrip()),
            title=f"result of {result.execution_id}: {execution.get('status')}",
            title_align="left",
            border_style="green" if result.ok else "red",
        )
    )
    if result.ok:
        consoles.err.print(
            Text(
                f"replay it: chiron events {thread_key} · continue it: "
                f"chiron chat --thread {thread_key}",
                style="dim",
            ),
            soft_wrap=True,
        )
    return result.ok
