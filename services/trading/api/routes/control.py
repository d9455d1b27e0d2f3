"""POST /api/trading/pause and /resume: the owner's brake (seed task 20.1). Idempotent: pausing
a paused engine changes nothing and writes no audit record; a change is audited like any
configuration change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.trading.api import commands
from services.trading.api.config_models import EngineSwitch
from services.trading.api.deps import RuntimeDep, require_token
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.routes.config import change_source

router = APIRouter(
    prefix="/api/trading", tags=["control"], dependencies=[Depends(require_token)], responses=UNAUTHORIZED
)


async def _switch(request: Request, runtime: RuntimeDep, paused: bool, what: str) -> EngineSwitch:
    previous, new = await commands.apply_config_change(
        runtime.store, {"paused": paused}, change_source(request, what)
    )
    return EngineSwitch(enabled=new["enabled"], paused=new["paused"], changed=previous != new)


@router.post(
    "/pause",
    response_model=EngineSwitch,
    summary="Pause trading: no new entries; open positions stay protected",
)
async def pause(request: Request, runtime: RuntimeDep) -> EngineSwitch:
    return await _switch(request, runtime, True, "POST /api/trading/pause")


@router.post(
    "/resume",
    response_model=EngineSwitch,
    summary="Resume trading after a pause (the engine must also be enabled to trade)",
)
async def resume(request: Request, runtime: RuntimeDep) -> EngineSwitch:
    return await _switch(request, runtime, False, "POST /api/trading/resume")
