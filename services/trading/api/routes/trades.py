"""GET /api/trading/trades: closed trades with the thesis of the recommendation that opened
them, newest exit first (dashboard task 23.4); GET /api/trading/tax-lots: the FIFO lot book,
with each piece's basis and fees, amount realized, wash sale and short or long term (issue 15)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from services.trading.api import views
from services.trading.api.deps import PagingDep, RuntimeDep, TimeRangeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import Page, TaxLotView, TradeView
from services.trading.api.routes.decisions import Ticker
from services.trading.live import read_model

router = APIRouter(
    prefix="/api/trading",
    tags=["portfolio"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)


@router.get(
    "/trades",
    response_model=Page[TradeView],
    summary="Closed trades (filter by ticker and exit time), with P&L and the recommendation's thesis",
)
async def list_trades(
    runtime: RuntimeDep, page: PagingDep, period: TimeRangeDep, ticker: Ticker = None
) -> Page[TradeView]:
    rows = await read_model.closed_trades(
        runtime.pool,
        ticker=ticker.upper() if ticker else None,
        since=period.since,
        until=period.until,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[TradeView](
        items=[views.trade(r) for r in rows.items], total=rows.total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/tax-lots",
    response_model=Page[TaxLotView],
    summary="Tax lots, most recently closed or bought first: basis with fees, amount realized, wash sale, term",
)
async def list_tax_lots(
    runtime: RuntimeDep,
    page: PagingDep,
    ticker: Ticker = None,
    status: Annotated[
        Literal["open", "closed", "washed"] | None, Query(description="open, closed or washed.")
    ] = None,
) -> Page[TaxLotView]:
    rows = await read_model.tax_lots(
        runtime.pool,
        ticker=ticker.upper() if ticker else None,
        status=status,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[TaxLotView](
        items=[views.tax_lot(r) for r in rows.items], total=rows.total, limit=page.limit, offset=page.offset
    )
