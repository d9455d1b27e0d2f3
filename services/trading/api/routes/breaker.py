"""POST /api/trading/breaker/halt and /breaker/clear: the owner's manual circuit breaker
(issue 15). Halting records a `manual` breaker event with the owner's reason: every new entry
is refused until the owner clears it (exits and stops still run). Clearing resolves only the
manual halt; a daily-loss or volatility halt in force stays until it ends by its own rule.
Both are idempotent: a second halt while one is in force, or a clear with none, writes nothing
(`changed: false`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.trading.api import views
from services.trading.api.deps import RuntimeDep, require_token
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.inputs import ExactJsonRoute
from services.trading.api.models import ApiModel, CircuitBreakerView
from services.trading.api.routes.config import change_source
from services.trading.core import circuit_breaker
from services.trading.live import breaker_cache

router = APIRouter(
    prefix="/api/trading/breaker",
    tags=["control"],
    dependencies=[Depends(require_token)],
    responses=UNAUTHORIZED,
    route_class=ExactJsonRoute,
)

# Printable text with something besides spaces: PostgreSQL's text refuses NUL, and a reason is
# read in notifications and on the dashboard. Stripped of surrounding spaces when stored; the
# pattern states it on the text as sent, so the schema and the check agree.
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f]"
Reason = Annotated[
    str,
    StringConstraints(
        strict=True,
        min_length=1,
        max_length=500,
        pattern=rf"^{_PRINTABLE}*[^\x00-\x20\x7f-\x9f]{_PRINTABLE}*$",
    ),
]


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason = Field(
        description="Why trading is halted: kept with the breaker event and shown on the dashboard."
    )


class BreakerChange(ApiModel):
    changed: bool = Field(
        description="False when nothing was written (already halted, or no manual halt to clear)."
    )
    circuit_breaker: CircuitBreakerView


async def _answer(runtime: RuntimeDep, changed: bool) -> BreakerChange:
    now = runtime.clock.now()
    state = await runtime.store.breaker_state()
    # The Redis mirror follows at once (the engine rewrites it every full tick anyway).
    await breaker_cache.publish(runtime.redis, state, now)
    return BreakerChange(changed=changed, circuit_breaker=await views.breaker_view(runtime, state, now))


@router.post(
    "/halt",
    response_model=BreakerChange,
    summary="Halt all trading now: refuse every new entry until cleared (stops and exits still run)",
)
async def halt(body: HaltRequest, request: Request, runtime: RuntimeDep) -> BreakerChange:
    reason = (
        f"{body.reason.strip() or body.reason} ({change_source(request, 'POST /api/trading/breaker/halt')})"
    )
    event = circuit_breaker.manual_halt(reason, runtime.clock.now())
    return await _answer(runtime, await runtime.store.trip_manual_breaker(event))


@router.post(
    "/clear",
    response_model=BreakerChange,
    summary="Clear the owner's halt (an automatic breaker in force stays until it ends)",
)
async def clear(runtime: RuntimeDep) -> BreakerChange:
    return await _answer(runtime, await runtime.store.clear_manual_breaker(runtime.clock.now()))
