"""What the proxy reports to the control plane: audit records and denials, never values.

Both go to callbacks given to `EgressProxy`. The proxy runs on its own thread; `EventSink`
hands every report to the loop that started the proxy (`call_soon_threadsafe`), so callbacks
run there, one at a time, and may use that loop's objects. They must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditRecord:
    """One request through a listener (DESIGN.md §8).

    `path` is the path as the sandbox sent it (placeholders, not values) without the query
    string; `secrets` names the secrets applied to the request. `status` is 0 when no response
    reached the sandbox; `denied` holds the rule when the proxy refused the request itself.
    """

    time: float
    sandbox_id: str
    principal_id: str | None
    host: str
    method: str
    path: str
    status: int
    secrets: tuple[str, ...]
    request_bytes: int
    response_bytes: int
    duration_ms: float
    denied: str | None = None


AuditCallback = Callable[[AuditRecord], None]
# (sandbox_id, host, method, rule): never a value, never a path or query.
DeniedCallback = Callable[[str, str, str, str], None]


class EventSink:
    """Delivers reports from the proxy thread to the owner loop's callbacks."""

    def __init__(
        self,
        owner: asyncio.AbstractEventLoop,
        on_audit: AuditCallback | None,
        on_denied: DeniedCallback | None,
    ) -> None:
        self._owner = owner
        self._on_audit = on_audit
        self._on_denied = on_denied

    def audit(self, record: AuditRecord) -> None:
        if self._on_audit is not None:
            self._deliver(self._on_audit, record)

    def denied(self, sandbox_id: str, host: str, method: str, rule: str) -> None:
        if self._on_denied is not None:
            self._deliver(self._on_denied, sandbox_id, host, method, rule)

    def _deliver(self, callback: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                callback(*args)
            except Exception:
                logger.exception("an egress callback failed")

        # A closed owner loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._owner.call_soon_threadsafe(run)
