"""GET /api/trading/positions: open positions with their stops (dashboard task 23.3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.trading.api import views
from services.trading.api.deps import RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import PositionsView

router = APIRouter(
    prefix="/api/trading",
    tags=["portfolio"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)


@router.get(
    "/positions",
    response_model=PositionsView,
    summary="Open positions at the latest prices, with stop-loss and take-profit levels and sector exposure",
)
async def get_positions(runtime: RuntimeDep) -> PositionsView:
    return await views.positions(runtime)
