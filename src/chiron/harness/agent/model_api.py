"""What every model provider module offers the turn loop, in provider-neutral terms.

A provider turns a `StepRequest` (system prompt, neutral history, tool specs) into one streamed
API call, reports text and reasoning as they arrive through a `StreamSink`, and returns a
`StepResult`. Every failure leaves it as a `ModelError` that says whether retrying may help.

Exceptions:

    ModelError            one model call failed (`retryable`, `retry_after`)
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import http
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chiron.harness.agent.history import Message
from chiron.harness.agent.tool_specs import ToolSpec

DETAIL_CHARS = 500
# Statuses a later attempt may get past; any other 4xx is the request's (or the key's) fault.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class ModelError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class StepRequest:
    model: str
    system: str
    messages: list[Message]
    tools: tuple[ToolSpec, ...]
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class ToolCallRequest:
    call_id: str
    name: str
    arguments: str  # raw JSON text, as the model sent it


@dataclass
class StepResult:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    # Anthropic `thinking`/`redacted_thinking` blocks, which must go back to the API unchanged.
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None


class StreamSink(Protocol):
    def on_text(self, delta: str) -> None: ...

    def on_reasoning(self, delta: str) -> None: ...

    def on_progress(self) -> None:
        """Something arrived from the API (also events that carry no text)."""


class Provider(Protocol):
    def stream_step(self, request: StepRequest, sink: StreamSink, handle: CallHandle) -> StepResult:
        """One streamed call; raises `ModelError` (or returns early once `handle` is aborted)."""


class CallHandle:
    """Lets another thread abort a call whose worker is blocked reading the response.

    Closing an httpx response from another thread does not wake a thread blocked in `recv` on
    its socket; `shutdown` does. Before the response headers arrived there is no socket to
    reach: the turn abandons the worker then, and the SDK's read timeout ends it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self.aborted = False

    def attach(self, response: Any) -> None:
        """`response`: the httpx response of the stream, once its headers arrived."""
        with self._lock:
            self._response = response
            aborted = self.aborted
        if aborted:
            _shutdown(response)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            response = self._response
        if response is not None:
            _shutdown(response)


def _shutdown(response: Any) -> None:
    stream = getattr(response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def status_phrase(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def error_detail(body: object, fallback: str) -> str:
    """The provider's own error message out of an error body (both APIs nest it in `error`)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        detail: str = body["message"]
    elif isinstance(body, str) and body:
        detail = body
    else:
        detail = fallback
    return detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS] + "…"


def error_type(body: object) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if isinstance(body, Mapping) and isinstance(body.get("type"), str):
        kind: str = body["type"]
        return kind
    return None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds asked for by `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = datetime.datetime.now(when.tzinfo or datetime.UTC)
    return max(0.0, (when - now).total_seconds())


def status_error(status: int, body: object, fallback: str, headers: Any) -> ModelError:
    """The `ModelError` for an HTTP error answer (or an error event inside a 200 stream)."""
    detail = error_detail(body, fallback)
    if status == 200:
        # An `error` event inside a stream that had started fine: the API's trouble, unless it
        # blames the request itself.
        kind = error_type(body) or "error"
        fatal = kind in {
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
        }
        return ModelError(f"model API stream reported {kind}: {detail}", retryable=not fatal)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    return ModelError(
        f"model API returned {status_phrase(status)}: {detail}",
        retryable=retryable,
        retry_after=retry_after(headers) if retryable else None,
    )
