"""GET /api/trading/status: what the engine is doing and what it holds (seed task 20.1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.trading.api import views
from services.trading.api.deps import RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import StatusView

router = APIRouter(
    prefix="/api/trading",
    tags=["status"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)


@router.get(
    "/status",
    response_model=StatusView,
    summary="Engine state: switches, risk tier, circuit breaker, "
    "Active and Reserve Pools, portfolio heat, open positions with stops, last decision, engine loop",
)
async def get_status(request: Request, runtime: RuntimeDep) -> StatusView:
    return await views.status(runtime, request.app.state.engine_runner)
