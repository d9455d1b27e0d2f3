"""GET /api/trading/decisions: every act/skip decision with its reasoning trace, newest first,
filtered by ticker, decision type and time range (seed task 20.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from services.trading.api import views
from services.trading.api.deps import PagingDep, RuntimeDep, TimeRangeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import DecisionView, Page
from services.trading.live import read_model

router = APIRouter(
    prefix="/api/trading",
    tags=["decisions"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)

Ticker = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,14}$", description="Only this ticker.")
]


@router.get("/decisions", response_model=Page[DecisionView], summary="Decisions, newest first")
async def list_decisions(
    runtime: RuntimeDep,
    page: PagingDep,
    period: TimeRangeDep,
    ticker: Ticker = None,
    decision: Annotated[Literal["act", "skip"] | None, Query(description="act or skip.")] = None,
) -> Page[DecisionView]:
    rows = await read_model.decisions(
        runtime.pool,
        ticker=ticker.upper() if ticker else None,
        decision=decision,
        since=period.since,
        until=period.until,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[DecisionView](
        items=[views.decision(r) for r in rows.items], total=rows.total, limit=page.limit, offset=page.offset
    )
