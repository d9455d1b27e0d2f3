"""GET /metrics: Prometheus exposition of the engine's counters and the database's gauges
(services/trading/live/telemetry.py). Guarded like the other reads."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.trading.api.deps import RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.core import circuit_breaker
from services.trading.live import read_model, telemetry

router = APIRouter(tags=["probes"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_read_access)],
    responses={
        **UNAUTHORIZED,
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format."},
    },
    summary="Prometheus metrics: decisions, orders, reports, faults, loop lag, breaker state",
)
async def prometheus_metrics(request: Request, runtime: RuntimeDep) -> Response:
    store = runtime.store
    decisions, faults, breakers, row = await asyncio.gather(
        read_model.decision_counts(runtime.pool),
        read_model.fault_counts(runtime.pool),
        store.breaker_state(),
        store.config_row(),
    )
    now = runtime.clock.now()
    active = circuit_breaker.is_active(breakers, now)
    engine = runtime.engine
    runner = request.app.state.engine_runner
    view = telemetry.DatabaseView(
        decisions=decisions,
        faults=faults,
        breaker_active=active,
        breaker_trigger=str(breakers.trigger_type) if active and breakers.trigger_type else None,
        tickers_in_cooldown=sum(1 for until in breakers.ticker_cooldowns.values() if until > now),
        enabled=row["enabled"],
        paused=row["paused"],
        engine_attached=engine is not None,
        engine_running=runner.running if runner is not None else bool(engine and engine.started),
        engine_holds_lock=bool(engine and engine.holds_lock),
    )
    return Response(telemetry.render(view), media_type=CONTENT_TYPE_LATEST)
