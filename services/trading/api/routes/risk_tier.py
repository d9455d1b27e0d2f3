"""GET /api/trading/risk-tier/history: every verdict of the risk tier, newest first (issue 15,
docs/contracts.md section 6.9): the autopilot's changes and held closes with the figures they
read, and the owner's changes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from services.trading.api.deps import PagingDep, RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import Page, TierVerdictView
from services.trading.live import read_model

router = APIRouter(
    prefix="/api/trading",
    tags=["performance"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)


@router.get(
    "/risk-tier/history",
    response_model=Page[TierVerdictView],
    summary="The risk tier's verdicts, newest first: changes and held closes, with their figures",
)
async def tier_history(
    runtime: RuntimeDep,
    page: PagingDep,
    verdict: Annotated[
        Literal["changed", "held"] | None, Query(description="Only changes, or only held closes.")
    ] = None,
) -> Page[TierVerdictView]:
    rows = await read_model.tier_history(runtime.pool, verdict=verdict, limit=page.limit, offset=page.offset)
    items = [
        TierVerdictView(
            id=r["id"],
            created_at=r["created_at"],
            verdict=r["verdict"],
            previous_tier=r["previous_tier"],
            new_tier=r["new_tier"],
            trigger_source=r["trigger_source"],
            reason=r["reason"],
            figures=dict(r["trigger_metrics"] or {}),
        )
        for r in rows.items
    ]
    return Page[TierVerdictView](items=items, total=rows.total, limit=page.limit, offset=page.offset)
