"""One chat turn through the public API, shared by `chiron chat` and `chiron up --demo`.

Steps: append the user message to the transcript, queue an execution whose single input line
is the user turn, then follow that execution's event stream to its terminal event. Both
requests carry ids the client chose, so a resent request (a retry, a proxy replay) neither
duplicates the message nor starts a second run. Ctrl-C during a turn asks the harness to stop
(interrupt); a second Ctrl-C stops following and leaves the execution to finish on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

from chiron.cli.client import ChironClient, JsonObject
from chiron.cli.console import Consoles
from chiron.cli.errors import CliError
from chiron.cli.event_stream import ReconnectPolicy
from chiron.cli.turn_renderer import TurnRenderer, TurnResult


def new_thread_key(namespace: str = "cli") -> str:
    return f"{namespace}:{secrets.token_hex(4)}"


def user_turn_line(text: str) -> str:
    """The harness input line of a user turn (DESIGN.md §7); json.dumps keeps it one line."""
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}})


async def ensure_session(
    client: ChironClient, thread_key: str, harness: str, *, require_new: bool = False
) -> JsonObject:
    answer = await client.create_session(thread_key, harness)
    if require_new and not answer.get("created"):
        raise CliError(f"thread {thread_key} already exists; leave out --new to continue it")
    session = answer.get("session")
    return session if isinstance(session, dict) else {}


async def run_turn(
    client: ChironClient,
    consoles: Consoles,
    thread_key: str,
    text: str,
    *,
    policy: ReconnectPolicy | None = None,
    handle_ctrl_c: bool = True,
) -> TurnResult:
    """Run one turn to its end; `handle_ctrl_c=False` leaves SIGINT to its current owner."""
    await client.append_user_message(thread_key, text, client_message_id=f"cli-{uuid.uuid4()}")
    queued = await client.execute(
        thread_key, [user_turn_line(text)], idempotency_key=f"cli-{uuid.uuid4()}"
    )
    execution_id = str(queued["execution_id"])
    renderer = TurnRenderer(consoles, execution_id)
    follow = asyncio.create_task(
        _follow(client, renderer, thread_key, execution_id, policy),
        name=f"cli:follow:{execution_id}",
    )
    interrupts = _Interrupter(client, renderer, thread_key, follow)
    renderer.start()
    try:
        with interrupts.on_ctrl_c() if handle_ctrl_c else contextlib.nullcontext():
            with contextlib.suppress(asyncio.CancelledError):
                await follow
            if follow.cancelled() and not interrupts.detached:
                raise asyncio.CancelledError
        return renderer.finish()
    finally:
        renderer.close()
        await interrupts.settle()


async def _follow(
    client: ChironClient,
    renderer: TurnRenderer,
    thread_key: str,
    execution_id: str,
    policy: ReconnectPolicy | None,
) -> None:
    follower = client.follow_events(
        thread_key,
        execution_id=execution_id,
        policy=policy,
        on_reconnect=renderer.note_reconnect,
    )
    async with aclosing(follower.events()) as events:
        async for event in events:
            renderer.on_event(event)


class _Interrupter:
    """First Ctrl-C: interrupt the turn on the server. Second: stop following it."""

    def __init__(
        self,
        client: ChironClient,
        renderer: TurnRenderer,
        thread_key: str,
        follow: asyncio.Task[None],
    ) -> None:
        self._client = client
        self._renderer = renderer
        self._thread_key = thread_key
        self._follow = follow
        self._request: asyncio.Task[Any] | None = None
        self.detached = False

    @contextlib.contextmanager
    def on_ctrl_c(self) -> Iterator[None]:
        # Signal handlers can only be installed from the main thread (a test runner may call
        # us from another); there Ctrl-C simply is not ours to handle.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGINT)
        loop.add_signal_handler(signal.SIGINT, self._pressed)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            signal.signal(signal.SIGINT, previous)

    def _pressed(self) -> None:
        if self._request is None:
            self._renderer.note("interrupting… (Ctrl-C again to stop waiting)")
            self._request = asyncio.create_task(
                self._client.interrupt(self._thread_key, reason="interrupted from the CLI"),
                name=f"cli:interrupt:{self._thread_key}",
            )
            return
        self.detached = True
        self._follow.cancel()

    async def settle(self) -> None:
        """Wait for a pending interrupt request, reporting (not raising) its failure."""
        if self._request is None:
            return
        try:
            await self._request
        except CliError as exc:
            self._renderer.note(f"the interrupt request failed: {exc.message}")
