"""Small clients for the session API used across tests (a real HTTP client, no shortcuts)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

TERMINAL_TYPES = {
    "session.execution_completed",
    "session.execution_failed",
    "session.execution_cancelled",
}


def user_line(text: str) -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": text}})


async def create_session(
    client: httpx.AsyncClient, thread_key: str, harness: str = "shell"
) -> dict[str, Any]:
    response = await client.post(f"/api/session/{thread_key}", json={"harness_type": harness})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def execute(client: httpx.AsyncClient, thread_key: str, command: str, **body: Any) -> str:
    response = await client.post(
        f"/api/session/{thread_key}/execute", json={"input_lines": [user_line(command)], **body}
    )
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def poll_events(
    client: httpx.AsyncClient,
    thread_key: str,
    *,
    after: int = 0,
    execution_id: str | None = None,
    wait: float = 1.0,
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"after_event_id": after, "format": "json", "wait": wait}
    if execution_id:
        params["execution_id"] = execution_id
    response = await client.get(f"/api/session/{thread_key}/events", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def wait_terminal(
    client: httpx.AsyncClient, thread_key: str, execution_id: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """All events of one execution up to and including its terminal event."""
    collected: list[dict[str, Any]] = []
    cursor = 0
    async with asyncio.timeout(timeout):
        while True:
            page = await poll_events(
                client, thread_key, after=cursor, execution_id=execution_id, wait=5.0
            )
            collected.extend(page)
            if page:
                cursor = page[-1]["event_id"]
            if collected and collected[-1]["event_type"] in TERMINAL_TYPES:
                return collected


async def get_execution(
    client: httpx.AsyncClient, thread_key: str, execution_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/session/{thread_key}/executions/{execution_id}")
    assert response.status_code == 200, response.text
    execution: dict[str, Any] = response.json()["execution"]
    return execution


def output_deltas(events: list[dict[str, Any]]) -> list[str]:
    """The command output lines carried by the shell harness's outputDelta notifications."""
    lines: list[str] = []
    for event in events:
        if event["event_type"] != "session.output.line":
            continue
        message = json.loads(event["payload"])
        if message.get("method") == "item/commandExecution/outputDelta":
            lines.append(message["params"]["delta"].rstrip("\n"))
    return lines
