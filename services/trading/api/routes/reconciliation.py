"""GET /api/trading/reconciliation and POST /api/trading/reconciliation/{id}/acknowledge
(issue 14): what reconciliation with the broker found, and the owner's acknowledgement.

The runs and findings are written by the Alpaca broker (services/alpaca_broker/reconciler.py);
with the paper broker there is nothing to reconcile and the lists stay empty. An unexplained
finding pauses new entries (a `reconciliation` circuit breaker event) until the owner
acknowledges it; acknowledging the last one ends the pause. Acknowledging is idempotent (a
second one writes nothing, `changed: false`) and audited like the owner's other actions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import Field

from services.trading.api.deps import RuntimeDep, require_read_access, require_token
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import ApiModel, Dec, ErrorBody
from services.trading.api.routes.config import change_source
from services.trading.live import breaker_cache
from services.trading.live.reconciliation_store import ReconciliationStore

router = APIRouter(prefix="/api/trading/reconciliation", tags=["control"], responses=UNAUTHORIZED)
BIGINT_MAX = 2**63 - 1


class BrokerAccountView(ApiModel):
    cash: Dec = Field(description="The broker's cash: the engine's cash in this mode.")
    buying_power: Dec | None = Field(
        None, description="The broker's buying power (null with the paper broker)."
    )
    equity: Dec | None = Field(None, description="The broker's account value (null with the paper broker).")
    updated_at: datetime


class ReconciliationRunView(ApiModel):
    id: int
    trigger: str = Field(description="start or interval.")
    started_at: datetime
    finished_at: datetime | None
    status: str = Field(description="agreed, differences or failed.")
    error: str | None
    found: int = Field(description="Findings recorded by this run (known ones are not recorded again).")
    positions_compared: int
    orders_compared: int
    engine_cash: Dec | None
    broker_cash: Dec | None


class DiscrepancyView(ApiModel):
    id: int
    run_id: int
    kind: str = Field(
        description="position, missed_outcome, order_not_at_broker, unknown_order, order_still_open or cash."
    )
    ticker: str | None
    client_order_id: str | None
    engine_figure: Dec
    broker_figure: Dec
    resolution: str = Field(description="in_flight, queued, adopted or unexplained.")
    rule: str = Field(description="The stated rule that resolved it, in words.")
    correction_order_id: str | None = Field(None, description="The correcting entry written for it, if any.")
    pauses: bool = Field(description="New entries are paused until it is acknowledged.")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class ReconciliationView(ApiModel):
    paused: bool = Field(description="New entries are paused by an unexplained difference.")
    account: BrokerAccountView | None
    runs: list[ReconciliationRunView] = Field(description="The latest runs, newest first.")
    open: list[DiscrepancyView] = Field(
        description="Findings told to the owner and not acknowledged, oldest first."
    )


class AcknowledgeResult(ApiModel):
    changed: bool = Field(description="False when it was acknowledged before (nothing written).")
    paused: bool = Field(description="New entries are still paused (another unexplained finding waits).")
    discrepancy: DiscrepancyView


def _discrepancy(row) -> DiscrepancyView:
    return DiscrepancyView(**{name: row[name] for name in DiscrepancyView.model_fields})


@router.get(
    "",
    response_model=ReconciliationView,
    dependencies=[Depends(require_read_access)],
    summary="Reconciliation with the broker: the latest runs, the open findings, the broker's account",
)
async def reconciliation(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=100, description="How many runs.")] = 10
) -> ReconciliationView:
    store = ReconciliationStore(runtime.pool)
    account = await store.broker_account()
    return ReconciliationView(
        paused=await store.paused(),
        account=BrokerAccountView(**dict(account)) if account is not None else None,
        runs=[
            ReconciliationRunView(**{n: r[n] for n in ReconciliationRunView.model_fields})
            for r in await store.latest_runs(limit)
        ],
        open=[_discrepancy(r) for r in await store.open_discrepancies()],
    )


@router.post(
    "/{discrepancy_id}/acknowledge",
    response_model=AcknowledgeResult,
    dependencies=[Depends(require_token)],
    responses={404: {"model": ErrorBody, "description": "No finding with this id."}},
    summary="Acknowledge a finding; the last unexplained one acknowledged ends the pause on new entries",
)
async def acknowledge(
    request: Request,
    runtime: RuntimeDep,
    discrepancy_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
) -> AcknowledgeResult:
    source = change_source(request, f"POST /api/trading/reconciliation/{discrepancy_id}/acknowledge")
    now = runtime.clock.now()
    result = await ReconciliationStore(runtime.pool).acknowledge(discrepancy_id, source, now)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reconciliation finding {discrepancy_id}")
    if result.changed:
        await runtime.store.record_command(source)
        # The Redis mirror of the breakers follows at once (the engine rewrites it every tick).
        await breaker_cache.publish(runtime.redis, await runtime.store.breaker_state(), now)
    return AcknowledgeResult(
        changed=result.changed, paused=result.paused, discrepancy=_discrepancy(result.row)
    )
