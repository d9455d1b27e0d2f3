"""The read model of the API: the SQL behind the list endpoints, the probes and `/metrics`
(STYLE principles 7 and 8: routes hold no SQL). Every function only reads.

Lists are pages: a count with the filters, then the rows with `LIMIT`/`OFFSET`, newest first
(snapshots oldest first, for charts). Filters left `None` match everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg

from services.shared import migrations

Executor = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class Rows:
    items: list[asyncpg.Record]
    total: int


async def _page(
    executor: Executor,
    select: str,
    source: str,
    where: Sequence[str],
    args: Sequence[Any],
    order: str,
    limit: int,
    offset: int,
) -> Rows:
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = await executor.fetchval(f"SELECT count(*) FROM {source}{clause}", *args)
    n = len(args)
    rows = await executor.fetch(
        f"SELECT {select} FROM {source}{clause} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    return Rows(list(rows), total)


class _Filters:
    def __init__(self) -> None:
        self.where: list[str] = []
        self.args: list[Any] = []

    def add(self, condition: str, value: Any) -> None:
        """`condition` has `$` where the value goes; skipped when `value` is None."""
        if value is None:
            return
        self.args.append(value)
        self.where.append(condition.replace("$", f"${len(self.args)}"))


async def decisions(
    executor: Executor,
    *,
    ticker: str | None,
    decision: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> Rows:
    f = _Filters()
    f.add("d.ticker = $", ticker)
    f.add("d.decision = $", decision)
    f.add("d.created_at >= $", since)
    f.add("d.created_at < $", until)
    return await _page(
        executor, "d.*", "trading_decisions d", f.where, f.args, "d.created_at DESC, d.id", limit, offset
    )


async def closed_trades(
    executor: Executor,
    *,
    ticker: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> Rows:
    f = _Filters()
    f.add("t.ticker = $", ticker)
    f.add("t.exit_at >= $", since)
    f.add("t.exit_at < $", until)
    return await _page(
        executor,
        "t.*, r.thesis",
        "closed_trades t LEFT JOIN recommendations r ON r.id = t.recommendation_id",
        f.where,
        f.args,
        "t.exit_at DESC, t.id DESC",
        limit,
        offset,
    )


async def tax_lots(
    executor: Executor, *, ticker: str | None, status: str | None, limit: int, offset: int
) -> Rows:
    f = _Filters()
    f.add("ticker = $", ticker)
    f.add("status = $", status)
    order = "coalesce(closed_date, acquisition_date) DESC, id DESC"
    return await _page(executor, "*", "tax_lots", f.where, f.args, order, limit, offset)


async def snapshots(
    executor: Executor, *, since: date | None, until: date | None, limit: int, offset: int
) -> Rows:
    f = _Filters()
    f.add("snapshot_date >= $", since)
    f.add("snapshot_date <= $", until)
    return await _page(executor, "*", "portfolio_snapshots", f.where, f.args, "snapshot_date", limit, offset)


async def tier_history(executor: Executor, *, verdict: str | None, limit: int, offset: int) -> Rows:
    """The risk tier's verdicts, newest first: changes (the autopilot's and the owner's) and
    the closes that held it, each with its reason and figures."""
    f = _Filters()
    f.add("verdict = $", verdict)
    return await _page(executor, "*", "risk_tier_history", f.where, f.args, "id DESC", limit, offset)


async def notifications(
    executor: Executor,
    *,
    channel: str | None,
    event_type: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> Rows:
    f = _Filters()
    f.add("channel = $", channel)
    f.add("event_type = $", event_type)
    f.add("delivery_status = $", status)
    return await _page(
        executor, "*", "notifications", f.where, f.args, "created_at DESC, id DESC", limit, offset
    )


async def backtests(executor: Executor, *, status: str | None, limit: int, offset: int) -> Rows:
    f = _Filters()
    f.add("status = $", status)
    return await _page(
        executor,
        "id, status, progress, error_message, start_date, end_date, initial_capital, "
        "risk_tier, final_value, total_return, sharpe_ratio, max_drawdown, win_rate, profit_factor, "
        "trade_count, created_at, completed_at",
        "backtest_runs",
        f.where,
        f.args,
        "created_at DESC, id",
        limit,
        offset,
    )


async def backtest_status(executor: Executor, backtest_id: UUID) -> str | None:
    return await executor.fetchval("SELECT status FROM backtest_runs WHERE id = $1", backtest_id)


# -- status ----------------------------------------------------------------------------------


async def last_decision_at(executor: Executor) -> datetime | None:
    return await executor.fetchval("SELECT max(created_at) FROM trading_decisions")


async def breaker_reason(executor: Executor, trigger_type: str, triggered_at: datetime) -> str | None:
    return await executor.fetchval(
        """SELECT reason FROM circuit_breaker_events WHERE resolved_at IS NULL AND trigger_type = $1
           AND created_at = $2 ORDER BY id DESC LIMIT 1""",
        trigger_type,
        triggered_at,
    )


async def start_of_day_value(executor: Executor, session: date) -> Any:
    """The account's value at the session's first tick, if the engine recorded one (read only:
    the engine creates its bookkeeping row itself)."""
    return await executor.fetchval(
        "SELECT start_of_day_value FROM engine_state WHERE id = 1 AND session_date = $1", session
    )


# -- /metrics --------------------------------------------------------------------------------


async def decision_counts(executor: Executor) -> dict[tuple[str, str], int]:
    # The stored category (migration 022) and its index: no trace is read.
    rows = await executor.fetch(
        "SELECT decision, category, count(*) AS n FROM trading_decisions GROUP BY 1, 2"
    )
    return {(r["decision"], r["category"]): r["n"] for r in rows}


async def fault_counts(executor: Executor) -> dict[str, int]:
    rows = await executor.fetch("SELECT component, count(*) AS n FROM engine_faults GROUP BY component")
    return {r["component"]: r["n"] for r in rows}


# -- /ready ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _expected_migrations() -> tuple[tuple[str, str], ...]:
    return tuple((m.version, m.checksum) for m in migrations.discover())


async def pending_migrations(executor: Executor) -> list[str]:
    """Migrations of this code base not applied (or applied in another version) to the database."""
    try:
        rows = await executor.fetch("SELECT version, checksum FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        return [version for version, _ in _expected_migrations()]
    applied = {r["version"]: r["checksum"] for r in rows}
    return [version for version, checksum in _expected_migrations() if applied.get(version) != checksum]


# -- errors ----------------------------------------------------------------------------------


async def constraint_definition(executor: Executor, constraint: str) -> str:
    """The text of a CHECK constraint of the configuration row, to name the fields it checks."""
    return (
        await executor.fetchval(
            """SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
           WHERE c.conname = $1 AND c.conrelid = 'trading_engine_config'::regclass""",
            constraint,
        )
        or ""
    )
