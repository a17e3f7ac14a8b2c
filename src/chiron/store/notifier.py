"""Wake-ups for stream readers when a session's log grows.

In-process waiters are woken directly by the writer after commit; on PostgreSQL a LISTEN
connection also wakes them for rows other processes committed. Readers still re-query every
few seconds, so a lost wake-up delays delivery but never loses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from sqlalchemy.engine import make_url

from chiron.store.event_queries import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)


class EventNotifier:
    def __init__(self) -> None:
        self._signals: dict[str, asyncio.Event] = {}
        self._remote: dict[str, int] = {}
        self.origin = os.urandom(8).hex()

    def notify(self, thread_key: str, *, remote: bool = False) -> None:
        """Wake readers of `thread_key`; `remote` when another process wrote the events."""
        if remote:
            self._remote[thread_key] = self._remote.get(thread_key, 0) + 1
        signal = self._signals.pop(thread_key, None)
        if signal is not None:
            signal.set()

    def remote_generation(self, thread_key: str) -> int:
        """Grows each time another process reports new events for `thread_key`."""
        return self._remote.get(thread_key, 0)

    async def wait(self, thread_key: str, timeout: float) -> bool:
        """Wait until `thread_key` gets new events or `timeout` passes; True if woken."""
        signal = self._signals.setdefault(thread_key, asyncio.Event())
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def signal_for(self, thread_key: str) -> asyncio.Event:
        """The event that fires on the next append; take it BEFORE querying to not miss one."""
        return self._signals.setdefault(thread_key, asyncio.Event())


class PostgresListener:
    """Forwards NOTIFYs on the events channel from other processes to an EventNotifier.

    `run()` keeps one LISTEN connection open and reconnects (with back-off) when it drops;
    while it is down, readers still see new events through their periodic re-query.
    """

    def __init__(self, database_url: str, notifier: EventNotifier) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._notifier = notifier
        self.connected = asyncio.Event()
        self.connections = 0

    async def run(self) -> None:
        import asyncpg

        delay = 0.5
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "chiron-listen"}
                )
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("LISTEN connection failed: %s; retrying", type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            try:
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.connections += 1
                self.connected.set()
                delay = 0.5
                await lost.wait()
                logger.warning("LISTEN connection lost; reconnecting")
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, thread_key = payload.partition(" ")
        if origin != self._notifier.origin:
            self._notifier.notify(thread_key, remote=True)
