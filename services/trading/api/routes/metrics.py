"""GET /api/trading/metrics and /metrics/history: performance now and day by day (seed task
20.1, docs/contracts.md section 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.trading.api import views
from services.trading.api.deps import PagingDep, RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED, field_error
from services.trading.api.inputs import IsoDate
from services.trading.api.models import MetricsView, Page, SnapshotView
from services.trading.live import read_model

router = APIRouter(
    prefix="/api/trading",
    tags=["performance"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)


@router.get(
    "/metrics",
    response_model=MetricsView,
    summary="Performance now: value, pools, P&L, win rate, profit factor, Sharpe, drawdowns, heat",
)
async def get_metrics(runtime: RuntimeDep) -> MetricsView:
    return await views.metrics(runtime)


@router.get(
    "/metrics/history",
    response_model=Page[SnapshotView],
    summary="End-of-day snapshots, oldest first (for the performance charts)",
)
async def metrics_history(
    runtime: RuntimeDep,
    page: PagingDep,
    since: Annotated[IsoDate | None, Query(description="From this session date (inclusive).")] = None,
    until: Annotated[IsoDate | None, Query(description="To this session date (inclusive).")] = None,
) -> Page[SnapshotView]:
    if since is not None and until is not None and until < since:
        raise field_error("until", "until is before since", until.isoformat(), where="query")
    rows = await read_model.snapshots(
        runtime.pool, since=since, until=until, limit=page.limit, offset=page.offset
    )
    return Page[SnapshotView](
        items=[views.snapshot(r) for r in rows.items], total=rows.total, limit=page.limit, offset=page.offset
    )
