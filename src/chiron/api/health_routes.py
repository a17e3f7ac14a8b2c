"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chiron.api.auth import control_plane, public
from chiron.api.models import Health
from chiron.runtime.control_plane import ControlPlane

router = APIRouter(tags=["health"], dependencies=[Depends(public)])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(ok=True, status="alive")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(plane: Annotated[ControlPlane, Depends(control_plane)]) -> Response:
    if not plane.ready:
        return JSONResponse({"ok": False, "status": "starting"}, status_code=503)
    return JSONResponse({"ok": True, "status": "ready"})


@router.get("/metrics", response_class=Response)
async def metrics(plane: Annotated[ControlPlane, Depends(control_plane)]) -> Response:
    return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)
