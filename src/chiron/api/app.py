"""The FastAPI application: routers, error shape, body limits, and the control plane's lifespan."""

from __future__ import annotations

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
    return create_app(Settings())
