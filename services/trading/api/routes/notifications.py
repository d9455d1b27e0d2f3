"""Notification settings and history (seed tasks 16, 20.1, 23.8): GET/PUT
/api/trading/notifications/config and GET /api/trading/notifications/history.

PUT takes the fields to change (others kept), validates the merged settings whole with the
notification service's own model, saves them with an audit record, and hands them to the
running notification service, if this process has one.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema, create_model
from pydantic.fields import FieldInfo

from services.shared.config import TradingConfig
from services.shared.schemas import DeliveryStatus, NotificationChannel, NotificationEventType
from services.trading.api import views
from services.trading.api.deps import PagingDep, RuntimeDep, require_read_access, require_token
from services.trading.api.errors import UNAUTHORIZED, located
from services.trading.api.inputs import ExactJsonRoute, InputDecimal, JsonBool, JsonInt
from services.trading.api.models import NotificationView, Page
from services.trading.api.routes.config import change_source
from services.trading.live import read_model
from services.trading.notifications.settings import (
    NotificationSettings,
    load_notification_settings,
    with_fallback,
)

router = APIRouter(prefix="/api/trading/notifications", tags=["notifications"], route_class=ExactJsonRoute)

# A wall-clock time in New York, "HH:MM[:SS]" (JSON Schema's "time" format would demand an offset).
WallTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
            "description": "HH:MM[:SS], America/New_York wall time.",
        }
    ),
]


# The API's types for the settings' plain ones: times as New York wall-clock strings, and in
# an update JSON's own integers and booleans only and bounded decimals.
VIEW_TYPES: dict[Any, Any] = {time: WallTime}
INPUT_TYPES: dict[Any, Any] = {**VIEW_TYPES, int: JsonInt, bool: JsonBool, Decimal: InputDecimal}


def _copy(name: str, doc: str, *, partial: bool) -> type[BaseModel]:
    """NotificationSettings' fields (types, ranges, descriptions) as an API model: all optional
    for an update."""
    types = INPUT_TYPES if partial else VIEW_TYPES
    fields = {}
    for field, info in NotificationSettings.model_fields.items():
        annotation = types.get(info.annotation, info.annotation)
        fields[field] = (annotation, FieldInfo.merge_field_infos(info, default=None) if partial else info)
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=doc, **fields)


NotificationSettingsUpdate = _copy(
    "NotificationSettingsUpdate",
    "Notification settings to change; fields left out are kept. A recipient set to null is cleared.",
    partial=True,
)
NotificationSettingsView = _copy(
    "NotificationSettingsView", "The notification settings in force.", partial=False
)


def _view(settings: NotificationSettings) -> BaseModel:
    return NotificationSettingsView.model_validate(settings.model_dump())


def _merged(
    stored: NotificationSettings, update: Any, fallback: TradingConfig | None
) -> NotificationSettings:
    """The stored settings with the update applied, checked as they will be in force: a
    recipient from the environment lets a channel be switched on, and stays there, unsaved."""
    values = {**stored.model_dump(), **update.model_dump(exclude_unset=True)}
    try:
        NotificationSettings.model_validate(with_fallback(values, fallback))
        return NotificationSettings.model_validate(values, context={"stored": True})
    except ValidationError as exc:
        raise located(_name_fields(exc.errors(include_url=False))) from None


def _name_fields(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A rule of the whole model ("sms_enabled needs ...") is located at the field it names."""
    named = []
    for error in errors:
        if not error["loc"]:
            words = str(error["msg"]).removeprefix("Value error, ").split()
            field = next((w for w in words if w in NotificationSettings.model_fields), None)
            error = {**error, "loc": (field,) if field else ()}
        named.append({k: v for k, v in error.items() if k != "ctx"} | {"msg": str(error["msg"])})
    return named


@router.get(
    "/config",
    response_model=NotificationSettingsView,
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="Notification settings in force (recipients may come from the environment)",
)
async def get_notification_config(runtime: RuntimeDep) -> BaseModel:
    return _view(await load_notification_settings(runtime.pool, runtime.trading))


@router.put(
    "/config",
    response_model=NotificationSettingsView,
    dependencies=[Depends(require_token)],
    responses=UNAUTHORIZED,
    summary="Change notification settings (fields sent; others kept), audited",
)
async def put_notification_config(
    update: NotificationSettingsUpdate,
    request: Request,  # type: ignore[valid-type]
    runtime: RuntimeDep,
) -> BaseModel:
    settings = _merged(await load_notification_settings(runtime.pool), update, runtime.trading)
    await runtime.store.save_notification_settings(
        settings, change_source(request, "PUT /api/trading/notifications/config")
    )
    in_force = await load_notification_settings(runtime.pool, runtime.trading)
    if runtime.notifications is not None:
        runtime.notifications.update_settings(in_force)
    return _view(in_force)


@router.get(
    "/history",
    response_model=Page[NotificationView],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
    summary="Notifications sent or attempted, newest first",
)
async def notification_history(
    runtime: RuntimeDep,
    page: PagingDep,
    channel: Annotated[NotificationChannel | None, Query()] = None,
    event_type: Annotated[NotificationEventType | None, Query()] = None,
    status: Annotated[
        DeliveryStatus | None, Query(description="pending, delivered, failed, rate_limited")
    ] = None,
) -> Page[NotificationView]:
    rows = await read_model.notifications(
        runtime.pool,
        channel=channel,
        event_type=event_type,
        status=status,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[NotificationView](
        items=[views.notification(r) for r in rows.items],
        total=rows.total,
        limit=page.limit,
        offset=page.offset,
    )
