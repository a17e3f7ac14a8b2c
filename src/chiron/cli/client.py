"""Async client for the Chiron HTTP API, as the CLI uses it.

Every failure leaves as one of the `chiron.cli.errors` exceptions with a message naming the
problem: which URL did not answer, which token source was rejected, what the server said.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from chiron.cli.connection import Connection
from chiron.cli.errors import ApiError, AuthRejected, CliError, ServerUnreachable
from chiron.cli.event_stream import EventFollower, ReconnectHook, ReconnectPolicy

JsonObject = dict[str, Any]


def thread_path(thread_key: str, suffix: str = "") -> str:
    # Thread keys may hold `?`, `#`, `%` or spaces; `:` stays readable in logs.
    return f"/api/session/{quote(thread_key, safe=':@')}{suffix}"


class ChironClient:
    """One connection pool to one server; use it as an async context manager."""

    def __init__(
        self,
        connection: Connection,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.connection = connection
        self.http = httpx.AsyncClient(
            base_url=connection.base_url,
            headers={"Authorization": f"Bearer {connection.token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    async def __aenter__(self) -> ChironClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- plumbing ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> JsonObject:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.http.request(
                method,
                path,
                json=body,
                params=clean,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        await self.raise_for_answer(response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise CliError(
                f"{self.connection.base_url} answered {method} {path} with something that is "
                "not a Chiron API response; is CHIRON_URL right?"
            )
        return answer

    async def raise_for_answer(self, response: httpx.Response) -> None:
        """Raise the matching CLI error for a non-2xx answer (the body must be read)."""
        if response.status_code < 400:
            return
        message, code = _error_of(response)
        source = self.connection.token_source
        if response.status_code == 401:
            raise AuthRejected(
                f"the server at {self.connection.base_url} rejected the API key from {source}: "
                f"{message}"
            )
        if response.status_code == 403:
            raise AuthRejected(f"the API key from {source} may not do this: {message}")
        raise ApiError(response.status_code, code, message)

    def unreachable(self, exc: httpx.TransportError) -> ServerUnreachable:
        url = self.connection.base_url
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ServerUnreachable(
                f"cannot reach the Chiron server at {url}; start it with `chiron up` "
                "or point CHIRON_URL at a running one"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnreachable(f"the server at {url} did not answer in time")
        return ServerUnreachable(
            f"the connection to the server at {url} broke ({type(exc).__name__})"
        )

    # -- health --------------------------------------------------------------------------

    async def readyz_status(self) -> int:
        """The HTTP status of `/readyz` (200 ready, 503 starting); raises when nothing answers."""
        try:
            response = await self.http.get("/readyz", timeout=5.0)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        return response.status_code

    # -- sessions ------------------------------------------------------------------------

    async def create_session(
        self,
        thread_key: str,
        harness_type: str,
        *,
        persona_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> JsonObject:
        body: JsonObject = {"harness_type": harness_type}
        if persona_id is not None:
            body["persona_id"] = persona_id
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return await self.request("POST", thread_path(thread_key), body=body)

    async def get_session(self, thread_key: str) -> JsonObject:
        return await self.request("GET", thread_path(thread_key))

    async def list_sessions(
        self, *, limit: int = 50, status: str | None = None, cursor: str | None = None
    ) -> JsonObject:
        return await self.request(
            "GET", "/api/sessions", params={"limit": limit, "status": status, "cursor": cursor}
        )

    async def append_user_message(
        self, thread_key: str, text: str, *, client_message_id: str
    ) -> list[str]:
        message = {
            "client_message_id": client_message_id,
            "role": "user",
            "parts": [{"type": "text", "text": text}],
        }
        answer = await self.request(
            "POST", thread_path(thread_key, "/messages"), body={"messages": [message]}
        )
        return [str(m) for m in answer.get("message_ids", [])]

    async def execute(
        self, thread_key: str, input_lines: list[str], *, idempotency_key: str
    ) -> JsonObject:
        return await self.request(
            "POST",
            thread_path(thread_key, "/execute"),
            body={"idempotency_key": idempotency_key, "input_lines": input_lines},
        )

    async def get_execution(self, thread_key: str, execution_id: str) -> JsonObject:
        answer = await self.request(
            "GET", thread_path(thread_key, f"/executions/{quote(execution_id, safe='')}")
        )
        execution = answer.get("execution")
        if not isinstance(execution, dict):
            raise CliError("the server's execution record has no `execution` object")
        return execution

    async def interrupt(self, thread_key: str, *, reason: str | None = None) -> JsonObject:
        return await self.request(
            "POST", thread_path(thread_key, "/interrupt"), body={"reason": reason}
        )

    # -- events --------------------------------------------------------------------------

    async def events_page(
        self,
        thread_key: str,
        *,
        after: int,
        execution_id: str | None = None,
        wait: float = 0.0,
        limit: int | None = None,
    ) -> JsonObject:
        return await self.request(
            "GET",
            thread_path(thread_key, "/events"),
            params={
                "after_event_id": after,
                "execution_id": execution_id,
                "format": "json",
                "wait": wait,
                "limit": limit,
            },
            timeout=wait + 30.0,
        )

    def follow_events(
        self,
        thread_key: str,
        *,
        after: int = 0,
        execution_id: str | None = None,
        policy: ReconnectPolicy | None = None,
        on_reconnect: ReconnectHook | None = None,
    ) -> EventFollower:
        async def execution_finished() -> bool:
            assert execution_id is not None
            execution = await self.get_execution(thread_key, execution_id)
            return execution.get("status") in {"completed", "failed", "cancelled"}

        return EventFollower(
            self.http,
            thread_path(thread_key, "/events"),
            after=after,
            execution_id=execution_id,
            policy=policy,
            raise_for_answer=self.raise_for_answer,
            confirm_end=execution_finished if execution_id is not None else None,
            on_reconnect=on_reconnect,
        )

    # -- front-door keys -----------------------------------------------------------------

    async def create_key(self, name: str, thread_prefixes: list[str]) -> JsonObject:
        return await self.request(
            "POST", "/api/keys", body={"name": name, "thread_prefixes": thread_prefixes}
        )

    async def list_keys(self) -> list[JsonObject]:
        answer = await self.request("GET", "/api/keys")
        return [k for k in answer.get("keys", []) if isinstance(k, dict)]

    async def revoke_key(self, key_id: str) -> None:
        await self.request("DELETE", f"/api/keys/{quote(key_id, safe='')}")


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], str(body.get("code") or "error")
    return response.reason_phrase or f"HTTP {response.status_code}", "http_error"
