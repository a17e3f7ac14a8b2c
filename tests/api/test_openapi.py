"""The HTTP contract: every route declares an access policy, and the OpenAPI document only
changes on purpose (regenerate with CHIRON_UPDATE_OPENAPI_SNAPSHOT=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.routing import APIRoute

from chiron.api.app import create_app
from chiron.api.auth import POLICIES
from chiron.settings import Settings

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def _app(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_app(Settings(home=tmp_path, admin_api_key="k" * 20))


def _policies(route: APIRoute) -> set[object]:
    found: set[object] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if dependency.call in POLICIES:
            found.add(dependency.call)
        stack.extend(dependency.dependencies)
    return found


def test_every_route_declares_an_access_policy(tmp_path: Path) -> None:
    app = _app(tmp_path)
    missing = [
        f"{sorted(route.methods)} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and not _policies(route)
    ]
    assert missing == []


def test_openapi_matches_snapshot(tmp_path: Path) -> None:
    document = _app(tmp_path).openapi()
    rendered = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if os.environ.get("CHIRON_UPDATE_OPENAPI_SNAPSHOT") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(rendered)
    assert rendered == SNAPSHOT.read_text(), "OpenAPI changed: review and regenerate the snapshot"


def test_openapi_documents_the_session_contract(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]
    for path in (
        "/api/session/{thread_key}",
        "/api/sessions",
        "/api/session/{thread_key}/messages",
        "/api/session/{thread_key}/execute",
        "/api/session/{thread_key}/executions/{execution_id}",
        "/api/session/{thread_key}/interrupt",
        "/api/session/{thread_key}/events",
        "/api/session/{thread_key}/pause",
        "/api/session/{thread_key}/resume",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert set(paths["/api/session/{thread_key}"]) == {"get", "post", "delete"}
