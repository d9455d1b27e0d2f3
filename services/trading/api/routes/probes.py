"""Liveness and readiness (seed task 20.1; the Helm chart's probes, seed task 22.1)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.trading.api import queries
from services.trading.api.deps import RuntimeDep
from services.trading.api.models import Health, Readiness

router = APIRouter(tags=["probes"])
DATABASE_TIMEOUT_SECONDS = 2.0


@router.get("/health", summary="Liveness: the process answers", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", summary="Readiness: database answers, schema current, engine running here (if it runs here)",
            response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready."}})
async def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, bool] = {}
    detail: dict[str, str] = {}
    try:
        pending = await asyncio.wait_for(queries.pending_migrations(runtime.pool), DATABASE_TIMEOUT_SECONDS)
        checks["database"] = True
        checks["migrations"] = not pending
        if pending:
            detail["migrations"] = "not applied: " + ", ".join(pending)
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "not ready", said why
        checks["database"] = checks["migrations"] = False
        detail["database"] = f"{type(exc).__name__}: {exc}"[:300]
    runner = request.app.state.engine_runner
    if runner is not None:
        engine = runner.engine
        checks["engine"] = runner.running and engine.started and engine.holds_lock
        if not checks["engine"]:
            detail["engine"] = runner.error or ("waiting for the account lock or still starting"
                                                if runner.running else "the engine loop is not running")
    body = Readiness(status="ready" if all(checks.values()) else "not_ready", checks=checks, detail=detail)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.status == "ready" else 503)
