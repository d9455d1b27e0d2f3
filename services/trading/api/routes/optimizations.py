"""POST /api/trading/optimizations starts a parameter search or walk-forward run in the background
and answers its id at once; GET /api/trading/optimizations lists runs; GET .../{id} reports one
with its progress, trials, windows, best, DSR, PBO and equity; GET .../parameters names what a
search space may tune and its bounds (the dashboard's form offers them) (issue 16)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from services.trading.api.deps import PagingDep, RuntimeDep, require_read_access, require_token
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.inputs import ExactJsonRoute
from services.trading.api.jobs import TooManyBacktests
from services.trading.api.models import ErrorBody, Page
from services.trading.api.optimization_models import (
    OptimizationAccepted,
    OptimizationRequest,
    OptimizationSummary,
    OptimizationView,
    TunableParameters,
)
from services.trading.backtest import BacktestConfigError
from services.trading.optimize import store
from services.trading.optimize.config import OptimizationConfig
from services.trading.optimize.runner import check_windows, run_optimization_job
from services.trading.optimize.search_space import ENGINE_TUNABLES, TIER_TUNABLES

router = APIRouter(prefix="/api/trading", tags=["optimization"], route_class=ExactJsonRoute)


def _refusal(body: OptimizationRequest, exc: BacktestConfigError) -> RequestValidationError:
    """422 at the field refused: `space.reward_risk_ratio` is ("body", "space", "reward_risk_ratio")."""
    path = tuple(exc.field.split(".", 1))
    if path[0] in ("train", "test", "step", "anchored"):
        path = ("walk_forward", path[0])
    value = body.model_dump(mode="json").get(path[0])
    if len(path) > 1 and isinstance(value, dict):
        value = value.get(path[1])
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", *path), "msg": str(exc), "input": value}]
    )


@router.post(
    "/optimizations",
    response_model=OptimizationAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_token)],
    responses={
        **UNAUTHORIZED,
        429: {"model": ErrorBody, "description": "An optimization is already running."},
    },
    summary="Start a parameter search or walk-forward run in the background; answers its id at once",
)
async def launch_optimization(body: OptimizationRequest, runtime: RuntimeDep) -> OptimizationAccepted:
    try:
        config = OptimizationConfig.parse(**body.as_parse_input())
        check_windows(config)
    except BacktestConfigError as exc:
        raise _refusal(body, exc) from None
    try:
        await runtime.optimizations.reserve_after_tidying(
            lambda run_id: store.is_finished(runtime.pool, run_id)
        )
    except TooManyBacktests as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "60"}
        ) from None
    run_id = uuid4()
    await store.create_run(
        runtime.pool, run_id, config.kind, config.to_json(), config.objective.value, config.trials_per_search
    )
    runtime.optimizations.start(
        run_id,
        run_optimization_job(
            runtime.pool, run_id, config, ray_address=runtime.ray_address, num_cpus=runtime.ray_num_cpus
        ),
    )
    return OptimizationAccepted(
        optimization_id=run_id, status="running", result_url=f"/api/trading/optimizations/{run_id}"
    )


@router.get(
    "/optimizations",
    response_model=Page[OptimizationSummary],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="Optimizations run so far, newest first (no trials)",
)
async def list_optimizations(
    runtime: RuntimeDep,
    page: PagingDep,
    status_: Annotated[
        Literal["running", "completed", "failed", "interrupted"] | None, Query(alias="status")
    ] = None,
) -> Page[OptimizationSummary]:
    rows, total = await store.list_runs(runtime.pool, status=status_, limit=page.limit, offset=page.offset)
    return Page[OptimizationSummary](
        items=[OptimizationSummary.of(r) for r in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/optimizations/parameters",
    response_model=TunableParameters,
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="The parameters a search space may name, with the values each accepts",
)
async def tunable_parameters() -> TunableParameters:
    return TunableParameters.of(TIER_TUNABLES, ENGINE_TUNABLES)


@router.get(
    "/optimizations/{optimization_id}",
    response_model=OptimizationView,
    dependencies=[Depends(require_read_access)],
    responses={**UNAUTHORIZED, 404: {"model": ErrorBody, "description": "No optimization with this id."}},
    summary="An optimization's progress, trials, windows, best trial, DSR, PBO and equity",
)
async def get_optimization(optimization_id: UUID, runtime: RuntimeDep) -> OptimizationView:
    run = await store.fetch_run(runtime.pool, optimization_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no optimization {optimization_id}")
    return OptimizationView.of(run)
