"""The FastAPI application: routers, error shape, body limits, and the control plane's lifespan."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chiron import __version__
from chiron.api import credential_routes, event_routes, health_routes, key_routes, session_routes
from chiron.api.errors import install_error_handlers
from chiron.api.limits import BodyLimitMiddleware
from chiron.runtime.control_plane import ControlPlane, load_or_create_admin_key
from chiron.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    plane = ControlPlane(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start()
        try:
            yield
        finally:
            await plane.stop()

    app = FastAPI(
        title="Chiron",
        version=__version__,
        summary="Sessions, executions and replayable event streams of a team's shared agent.",
        lifespan=lifespan,
    )
    app.state.control_plane = plane
    app.state.admin_key = load_or_create_admin_key(settings)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.body_limit_bytes,
        large_limit=settings.large_body_limit_bytes,
    )
    app.include_router(health_routes.router)
    app.include_router(event_routes.router)
    app.include_router(key_routes.router)
    app.include_router(session_routes.router)
    app.include_router(credential_routes.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory chiron.api.app:app_from_env` (settings from CHIRON_*)."""
    app = create_app(Settings())
    tune_interpreter()
    return app


def tune_interpreter() -> None:
    """Interpreter settings for a long-running server process (call once, after imports).

    Every output line makes a few small tuples on the way to the database, and with the default
    gen-0 threshold (700) the collector ran hundreds of times a second over everything the
    process holds: 20-30% of a flood's throughput (bench/event_throughput.py). Objects alive
    after start-up (modules, the app) are frozen out of collections altogether.

    SQLite's writer thread takes the GIL back several times per transaction (it releases it
    inside each sqlite3 call); with the default 5 ms switch interval each of those waits up
    to 5 ms behind a busy event loop, and the transaction holds the write lock meanwhile.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    sys.setswitchinterval(0.0005)
