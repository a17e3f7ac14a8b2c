"""Background tasks with names, references and a stop path (no bare `create_task`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TaskSet:
    """Keeps every task it starts until it ends; logs crashes; cancels the rest on close."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._on_done)
        return task

    def get(self, name: str) -> asyncio.Task[Any] | None:
        return self._tasks.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._tasks

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(task.get_name()) is task:
            del self._tasks[task.get_name()]
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "background task crashed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )

    async def wait(self, timeout: float, prefix: str = "") -> None:
        """Wait up to `timeout` for the tasks whose name starts with `prefix` to finish."""
        pending = [t for n, t in self._tasks.items() if n.startswith(prefix)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
