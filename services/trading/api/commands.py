"""The API's configuration writes: the engine store applies them, audited, all or nothing; a
refusal by the database comes back as a 422 naming the fields it concerns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.trading.api.errors import fields_error
from services.trading.live.engine_store import ConfigRefused, EngineStore


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
