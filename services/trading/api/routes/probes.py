"""Liveness and readiness (seed task 20.1; the Helm chart's probes, seed task 22.1)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.trading.api import readiness
from services.trading.api.deps import RuntimeDep
from services.trading.api.models import Health, Readiness

router = APIRouter(tags=["probes"])


@router.get("/health", summary="Liveness: the process answers", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    summary="Readiness: every dependency this process uses, each named with its state",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
async def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = await readiness.assess(runtime, request.app.state.engine_runner)
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if body.status == "not_ready" else 200)
