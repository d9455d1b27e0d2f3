"""The API's writes that are not the engine store's: notification settings saved with their
audit record, and interrupted backtests closed. Configuration changes go through
`EngineStore.update_config`, which audits them itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from services.shared.config import TradingConfig
from services.trading.api import queries
from services.trading.api.errors import fields_error
from services.trading.notifications.settings import (
    NotificationSettings,
    SettingsChange,
    save_notification_settings,
)
from services.trading.live.engine_store import EngineStore

_NOT_AUDITED = ("created_at", "updated_at", "id")  # as `EngineStore.update_config` records rows


def _audit_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in row.items() if k not in _NOT_AUDITED}, default=str))


async def save_notifications_audited(pool: asyncpg.Pool, settings: NotificationSettings, source: str,
                                     fallback: TradingConfig | None = None) -> SettingsChange:
    """Save the notification settings and, in the same transaction, the `trading_config_audit`
    record of the whole configuration row before and after (seed task 20.2)."""
    async with pool.acquire() as connection, connection.transaction():
        before = await connection.fetchrow("SELECT * FROM trading_engine_config WHERE id = 1 FOR UPDATE")
        change = await save_notification_settings(connection, settings, fallback)
        after = await connection.fetchrow("SELECT * FROM trading_engine_config WHERE id = 1")
        previous, new = _audit_json(before), _audit_json(after)
        if previous != new:
            await connection.execute(
                "INSERT INTO trading_config_audit (previous_config, new_config, change_source) VALUES ($1, $2, $3)",
                previous, new, source)
    return change


async def mark_backtest_failed(pool: asyncpg.Pool, backtest_id: UUID, error: str) -> None:
    await pool.execute(
        """UPDATE backtest_runs SET status = 'failed', error_message = $2, completed_at = now()
           WHERE id = $1 AND status = 'running'""", backtest_id, error)


async def apply_config_change(store: EngineStore, changes: Mapping[str, Any], source: str
                              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`EngineStore.update_config` (all or nothing, audited), with a refusal by the database
    (a rule tying two fields together, a value it cannot store) turned into a 422 naming the
    fields involved: nothing was written then, the transaction rolled back whole."""
    try:
        return await store.update_config(changes, source)
    except asyncpg.CheckViolationError as exc:
        definition = await queries.constraint_definition(store.pool, exc.constraint_name or "")
        involved = [name for name in changes if re.search(rf"\b{re.escape(name)}\b", definition)] or list(changes)
        raise fields_error(involved, f"refused by the rule {definition or exc.constraint_name}: nothing was changed",
                           {name: _plain(changes[name]) for name in involved}) from None
    except (asyncpg.DataError, asyncpg.NumericValueOutOfRangeError) as exc:
        raise fields_error(list(changes), f"could not be stored ({exc}): nothing was changed") from None


def _plain(value: Any) -> Any:
    return str(value) if not isinstance(value, (bool, int, str, dict, list, type(None))) else value
