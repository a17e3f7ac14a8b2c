"""Run the API server inside an existing event loop (demo mode, tests and benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from chiron.api.app import create_app
from chiron.settings import Settings


@asynccontextmanager
async def serve_in_background(
    settings: Settings, *, log_level: str = "warning"
) -> AsyncIterator[FastAPI]:
    """Serve on `settings.listen` until the block exits; yields once the server is ready."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.listen_host,
            port=settings.listen_port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=5,
            log_config=None,
        )
    )
    task = asyncio.create_task(server.serve(), name="chiron-api-server")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.02)
        yield app
    finally:
        server.should_exit = True
        await task
