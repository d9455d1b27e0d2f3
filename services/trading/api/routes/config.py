"""GET and PUT /api/trading/config: the runtime configuration, changed all or nothing and
audited with the previous and new configuration and the change's source (seed task 20.2)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.trading.api import commands
from services.trading.api.config_models import ConfigChange, ConfigUpdate, ConfigView
from services.trading.api.deps import RuntimeDep, require_read_access, require_token
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.inputs import ExactJsonRoute

router = APIRouter(prefix="/api/trading", tags=["config"], route_class=ExactJsonRoute)


def change_source(request: Request, what: str) -> str:
    client = request.client.host if request.client else "unknown"
    return f"api: {what} (client {client})"


@router.get(
    "/config",
    response_model=ConfigView,
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="The engine's runtime configuration, with each tier's parameters",
)
async def get_config(runtime: RuntimeDep) -> ConfigView:
    return ConfigView.of(await runtime.store.config_row())


@router.put(
    "/config",
    response_model=ConfigChange,
    dependencies=[Depends(require_token)],
    responses=UNAUTHORIZED,
    summary="Change configuration fields (those sent; others kept): all or nothing, audited",
)
async def put_config(update: ConfigUpdate, request: Request, runtime: RuntimeDep) -> ConfigChange:
    changes = update.changes()
    source = change_source(request, "PUT /api/trading/config")
    previous, new = await commands.apply_config_change(runtime.store, changes, source)
    commands.announce_tier_change(runtime.notifier, previous, new, source, runtime.clock.now())
    changed = [name for name in changes if previous.get(name) != new.get(name)]
    return ConfigChange(changed=changed, config=ConfigView.of(await runtime.store.config_row()))
