"""POST /api/trading/backtest starts a backtest in the background and answers its id at once;
GET /api/trading/backtest/{id} reports it running (with progress), completed or failed, with
its results (seed tasks 19.1, 20.1, 23.6). The replay uses the owner's current configuration
at the requested risk tier."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.trading.api.backtest_models import (
    BacktestAccepted,
    BacktestRequest,
    BacktestSummary,
    BacktestView,
)
from services.trading.api.deps import PagingDep, RuntimeDep, require_read_access, require_token
from services.trading.api.errors import UNAUTHORIZED, field_error
from services.trading.api.inputs import ExactJsonRoute
from services.trading.api.jobs import TooManyBacktests
from services.trading.api.models import ErrorBody, Page
from services.trading.backtest import BacktestConfig, BacktestConfigError
from services.trading.backtest.run_store import create_backtest_run, fetch_backtest, run_backtest_job
from services.trading.live import read_model

router = APIRouter(prefix="/api/trading", tags=["backtest"], route_class=ExactJsonRoute)


@router.post(
    "/backtest",
    response_model=BacktestAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_token)],
    responses={**UNAUTHORIZED, 429: {"model": ErrorBody, "description": "Too many backtests running."}},
    summary="Start a backtest in the background; answers its id at once",
)
async def launch_backtest(body: BacktestRequest, runtime: RuntimeDep) -> BacktestAccepted:
    settings = await runtime.store.load_settings()
    try:
        config = BacktestConfig.parse(**body.as_parse_input(), settings=settings)
    except BacktestConfigError as exc:
        raise field_error(exc.field, str(exc), getattr(body, exc.field, None)) from None
    try:
        runtime.backtests.reserve()
    except TooManyBacktests as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "30"}
        ) from None
    backtest_id = await create_backtest_run(runtime.pool, config)
    runtime.backtests.start(backtest_id, run_backtest_job(runtime.pool, config, backtest_id))
    return BacktestAccepted(
        backtest_id=backtest_id, status="running", result_url=f"/api/trading/backtest/{backtest_id}"
    )


@router.get(
    "/backtest",
    response_model=Page[BacktestSummary],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="Backtests run so far, newest first (no trade logs)",
)
async def list_backtests(
    runtime: RuntimeDep,
    page: PagingDep,
    status_: Annotated[Literal["running", "completed", "failed"] | None, Query(alias="status")] = None,
) -> Page[BacktestSummary]:
    rows = await read_model.backtests(runtime.pool, status=status_, limit=page.limit, offset=page.offset)
    return Page[BacktestSummary](
        items=[BacktestSummary.of(r) for r in rows.items],
        total=rows.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/backtest/{backtest_id}",
    response_model=BacktestView,
    dependencies=[Depends(require_read_access)],
    responses={**UNAUTHORIZED, 404: {"model": ErrorBody, "description": "No backtest with this id."}},
    summary="A backtest's status, progress and results (metrics, equity curve, trade log)",
)
async def get_backtest(backtest_id: UUID, runtime: RuntimeDep) -> BacktestView:
    run = await fetch_backtest(runtime.pool, backtest_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no backtest {backtest_id}")
    return BacktestView.of(run)
