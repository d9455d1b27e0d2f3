"""The daily summary and weekly digest (seed task 25.5): their figures, read from the
session snapshots and closed trades, as notification events."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import asyncpg

from services.trading.core import performance_tracker
from services.trading.core.models import ZERO
from services.trading.core.trading_window import NEW_YORK
from services.trading.live.session_close import closed_trades
from services.trading.notifications import events
from services.trading.notifications.events import NotificationEvent
from services.trading.notifications.schedule import ScheduledReport


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time.min, NEW_YORK),
        datetime.combine(last + timedelta(days=1), time.min, NEW_YORK),
    )


async def _snapshots(
    pool: asyncpg.Pool, first: date, last: date
) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
    """The last snapshot before the period and the last one in it."""
    before = await pool.fetchrow(
        "SELECT * FROM portfolio_snapshots WHERE snapshot_date < $1 ORDER BY snapshot_date DESC LIMIT 1",
        first,
    )
    latest = await pool.fetchrow(
        "SELECT * FROM portfolio_snapshots WHERE snapshot_date <= $1 ORDER BY snapshot_date DESC LIMIT 1",
        last,
    )
    return before, latest


def _change(before: asyncpg.Record | None, latest: asyncpg.Record | None) -> tuple[Decimal, float | None]:
    if latest is None:
        return ZERO, None
    if before is None or not before["portfolio_value"]:
        return ZERO, None
    change = latest["portfolio_value"] - before["portfolio_value"]
    return change, float(change / before["portfolio_value"])


async def daily_summary(pool: asyncpg.Pool, report: ScheduledReport, now: datetime) -> NotificationEvent:
    before, latest = await _snapshots(pool, report.first_day, report.last_day)
    start, end = _day_bounds(report.first_day, report.last_day)
    trades = [t for t in await closed_trades(pool, start) if t.exit_at < end]
    change, change_pct = _change(before, latest)
    return events.daily_summary(
        now,
        session=report.last_day,
        total_value=latest["portfolio_value"] if latest else ZERO,
        day_pnl=change,
        day_pnl_pct=change_pct,
        realized_pnl=sum((t.pnl for t in trades), ZERO),
        trades_closed=len(trades),
        wins=sum(t.pnl > 0 for t in trades),
        losses=sum(t.pnl < 0 for t in trades),
        open_positions=len(latest["positions"]) if latest else 0,
        active_pool=latest["active_pool"] if latest else ZERO,
        reserve=latest["reserve_pool"] if latest else ZERO,
        risk_tier=latest["risk_tier"] if latest else "unknown",
        reserve_high_water=(latest["metrics"] or {}).get("reserve_high_water") if latest else None,
    )


async def weekly_digest(pool: asyncpg.Pool, report: ScheduledReport, now: datetime) -> NotificationEvent:
    before, latest = await _snapshots(pool, report.first_day, report.last_day)
    start, end = _day_bounds(report.first_day, report.last_day)
    trades = [t for t in await closed_trades(pool, start) if t.exit_at < end]
    change, change_pct = _change(before, latest)
    return events.weekly_digest(
        now,
        week_start=report.first_day,
        week_end=report.last_day,
        total_value=latest["portfolio_value"] if latest else ZERO,
        week_pnl=change,
        week_pnl_pct=change_pct,
        realized_pnl=sum((t.pnl for t in trades), ZERO),
        trades_closed=len(trades),
        win_rate=performance_tracker.win_rate(trades) if trades else None,
        sharpe=latest["sharpe_ratio"] if latest else None,
        max_drawdown=latest["max_drawdown"] if latest else None,
        reserve=latest["reserve_pool"] if latest else ZERO,
        risk_tier=latest["risk_tier"] if latest else "unknown",
    )
