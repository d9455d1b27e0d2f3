"""The API's configuration writes: the engine store applies them, audited, all or nothing; a
refusal by the database comes back as a 422 naming the fields it concerns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from services.trading.api.errors import fields_error
from services.trading.live.engine_store import ConfigRefused, EngineStore
from services.trading.notifications import events

log = structlog.get_logger(__name__)


async def apply_config_change(
    store: EngineStore, changes: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`EngineStore.update_config_checked`, its refusal turned into a 422 naming the fields
    involved: nothing was written then."""
    try:
        return await store.update_config_checked(changes, source)
    except ConfigRefused as refused:
        echoed = {name: _plain(changes[name]) for name in refused.fields} if refused.echo else None
        raise fields_error(list(refused.fields), refused.reason, echoed) from None


def _plain(value: Any) -> Any:
    return str(value) if not isinstance(value, (bool, int, str, dict, list, type(None))) else value


def announce_tier_change(
    notifier: Any | None, previous: Mapping[str, Any], new: Mapping[str, Any], source: str, now: datetime
) -> None:
    """The owner's tier change reaches the owner as the autopilot's does (issue 15: every
    notification event, whoever caused it): the same `risk_tier_changed` event."""
    if previous.get("risk_tier") == new.get("risk_tier"):
        return
    event = events.risk_tier_changed(
        now,
        previous_tier=str(previous.get("risk_tier")),
        new_tier=str(new.get("risk_tier")),
        reason=f"set by the owner ({source})",
    )
    if notifier is None:
        log.warning(
            "risk tier changed by the owner; no notifier in this process", reason=event.data["reason"]
        )
        return
    notifier.notify(event)
