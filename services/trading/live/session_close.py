"""What happens once a session has closed (seed tasks 15.3, 25.3, 11.1, 7.1): the day's
snapshot and metrics, the emergency drawdown rule, the risk tier evaluation, the reserve
high-water signal and the correlation refresh. Each rule is the decision core's; this module
reads and writes, all of a session's close in one transaction so that it happens once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import asyncpg
import structlog

from services.shared.schemas import RiskTierName
from services.trading.core import close_of_session, correlation, performance_tracker, reserve_pool
from services.trading.core.close_of_session import CloseFigures
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ClosedTrade, PortfolioState
from services.trading.core.performance_tracker import PerformanceReport
from services.trading.core.reserve_pool import ReserveLedgerEntry
from services.trading.core.risk_tier_controller import RiskTierChange
from services.trading.live.engine_store import EngineStore
from services.trading.live.fill_handler import insert_ledger_entry, reserve_state

log = structlog.get_logger(__name__)
Executor = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class SessionCloseResult:
    """What the close decided. `emergency_reason` is set on the session the drawdown first
    went beyond the emergency threshold (the owner hears once per crossing), `high_water`
    while the reserve is above its high-water share, `high_water_crossed` on its first day."""

    report: PerformanceReport
    tier_change: RiskTierChange | None
    emergency: ReserveLedgerEntry | None
    correlations: correlation.CorrelationMatrix
    emergency_reason: str | None = None
    high_water: str | None = None
    high_water_crossed: bool = False


async def closed_trades(pool: Executor, since: datetime | None = None) -> list[ClosedTrade]:
    rows = await pool.fetch(
        "SELECT * FROM closed_trades WHERE $1::timestamptz IS NULL OR exit_at >= $1 ORDER BY exit_at, id",
        since,
    )
    return [
        ClosedTrade(
            r["ticker"],
            r["entry_price"],
            r["exit_price"],
            r["quantity"],
            r["entry_at"],
            r["exit_at"],
            r["recommendation_id"],
            r["is_micro_trade"],
            r["fees"],
        )
        for r in rows
    ]


async def equity_curve(pool: Executor, before: date) -> list[Decimal]:
    rows = await pool.fetch(
        "SELECT portfolio_value FROM portfolio_snapshots WHERE snapshot_date < $1 ORDER BY snapshot_date",
        before,
    )
    return [r["portfolio_value"] for r in rows]


async def refresh_correlations(
    pool: asyncpg.Pool, as_of: date, now: datetime
) -> correlation.CorrelationMatrix:
    """Trailing-90-session correlations of every ticker's daily closes, cached in the table."""
    rows = await pool.fetch(
        """SELECT ticker, ts, close FROM price_bars WHERE interval = '1d' AND ts <= $1 AND ts > $1 - interval '200 days'
           ORDER BY ts""",
        now,
    )
    closes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for r in rows:
        closes[r["ticker"]][r["ts"].date()] = r["close"]
    matrix = correlation.compute_correlation_matrix(closes, as_of=as_of, computed_at=now)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("DELETE FROM correlation_matrix_cache")
        await connection.copy_records_to_table(
            "correlation_matrix_cache",
            columns=["ticker_a", "ticker_b", "correlation_coefficient", "lookback_days", "computed_at"],
            records=[(a, b, value, correlation.LOOKBACK_DAYS, now) for a, b, value in matrix.pairs()],
        )
    return matrix


async def close_session(
    store: EngineStore,
    session: date,
    portfolio: PortfolioState,
    settings: EngineSettings,
    start_of_day_value: Decimal,
    now: datetime,
) -> SessionCloseResult:
    """The whole close in one transaction, `last_close_processed` included: a close that
    fails part way leaves nothing behind, so a retry cannot change the risk tier twice."""
    # A cache, safe to redo: refreshed first so its failure leaves nothing half-done.
    matrix = await refresh_correlations(store.pool, session, now)
    async with store.pool.acquire() as connection, connection.transaction():
        trades = await closed_trades(connection)
        previous = await _previous_snapshot(connection, session)
        # At the close today's value is an end-of-day value: Sharpe counts today's return
        # (docs/contracts.md section 6). The tracker appends the value again, which moves no drawdown.
        curve = [*await equity_curve(connection, session), portfolio.total_value]
        report = performance_tracker.compute_metrics(
            portfolio=portfolio,
            closed_trades=trades,
            equity_curve=curve,
            start_of_day_value=start_of_day_value,
            computed_at=now,
        )
        metrics = report.metrics
        figures = CloseFigures(
            metrics.total_portfolio_value, metrics.current_drawdown, await reserve_state(connection)
        )
        memory = await store.tier_memory(connection)
        outcome = close_of_session.close_session(figures, trades, settings.risk_tier, now, settings, memory)
        emergency, change = outcome.release, outcome.tier_change
        await _record_emergency(connection, emergency)
        if emergency.entry is not None:
            # The rules read the figures of the close; the snapshot shows the account after them.
            report = _after_release(report, emergency.state.balance)
        if change is not None:
            await _record_tier_change(store, change, connection)
        else:
            await store.record_tier_verdict(outcome.verdict, connection)
        high_water = reserve_pool.reserve_high_water(
            emergency.state.balance, portfolio.total_value, settings.reserve
        )
        if high_water is not None:
            log.info("reserve above its high-water mark", reason=high_water)
        tier = change.new_tier if change is not None else settings.risk_tier
        await _snapshot(connection, session, report, tier, portfolio, now, high_water)
        await connection.execute(
            "UPDATE engine_state SET last_close_processed = $1, updated_at = now() WHERE id = 1", session
        )
    crossed = reserve_pool.emergency_crossed(
        _drawdown(previous), Decimal(str(report.metrics.current_drawdown)), settings.reserve
    )
    return SessionCloseResult(
        report,
        change,
        emergency.entry,
        matrix,
        emergency.reason if crossed else None,
        high_water,
        high_water is not None and not _high_water(previous),
    )


def _after_release(report: PerformanceReport, reserve: Decimal) -> PerformanceReport:
    """The report with the pools as the emergency release left them: the whole value active."""
    m = report.metrics
    pools = replace(m, active_pool=m.total_portfolio_value - reserve, reserve_pool=reserve)
    return replace(report, metrics=pools)


async def _previous_snapshot(connection: asyncpg.Connection, session: date) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """SELECT current_drawdown_pct, metrics FROM portfolio_snapshots WHERE snapshot_date < $1
           ORDER BY snapshot_date DESC LIMIT 1""",
        session,
    )


def _drawdown(snapshot: asyncpg.Record | None) -> Decimal | None:
    return None if snapshot is None else Decimal(str(snapshot["current_drawdown_pct"]))


def _high_water(snapshot: asyncpg.Record | None) -> bool:
    return snapshot is not None and bool((snapshot["metrics"] or {}).get("reserve_high_water"))


async def _record_emergency(connection: asyncpg.Connection, update: reserve_pool.ReserveUpdate) -> None:
    """The emergency rule's ledger entry, when it released the reserve."""
    if update.entry is not None:
        await insert_ledger_entry(connection, update.entry)
    if update.new_risk_tier is not None:
        log.warning("emergency drawdown rule fired", reason=update.reason)


async def _record_tier_change(
    store: EngineStore, change: RiskTierChange, connection: asyncpg.Connection | None = None
) -> None:
    """The new tier with its audit record and history row (on the close's connection, inside
    its transaction)."""
    await store.update_config(
        {"risk_tier": change.new_tier.value},
        source=f"risk_tier_controller: {change.reason}",
        connection=connection,
        tier_change=change,
    )
    log.warning(
        "risk tier changed",
        previous=change.previous_tier.value,
        new=change.new_tier.value,
        reason=change.reason,
    )


async def _snapshot(
    pool: Executor,
    session: date,
    report: PerformanceReport,
    tier: RiskTierName,
    portfolio: PortfolioState,
    now: datetime,
    high_water: str | None = None,
) -> None:
    m = report.metrics
    previous = await pool.fetchval(
        "SELECT portfolio_value FROM portfolio_snapshots WHERE snapshot_date < $1 ORDER BY snapshot_date DESC LIMIT 1",
        session,
    )
    first = await pool.fetchval(
        "SELECT portfolio_value FROM portfolio_snapshots ORDER BY snapshot_date LIMIT 1"
    )
    daily_return = float(m.total_portfolio_value / previous - 1) if previous else 0.0
    cumulative = float(m.total_portfolio_value / first - 1) if first else 0.0
    positions = [
        {
            "ticker": p.ticker,
            "quantity": p.quantity,
            "entry_price": p.entry_price,
            "current_price": p.current_price,
            "sector": p.sector,
        }
        for p in portfolio.positions
    ]
    micro = report.micro
    await pool.execute(
        """INSERT INTO portfolio_snapshots (snapshot_date, portfolio_value, active_pool, reserve_pool, daily_return,
               cumulative_return, unrealized_pnl, realized_pnl, win_count, loss_count, win_rate, sharpe_ratio,
               max_drawdown, current_drawdown_pct, portfolio_heat, risk_tier, positions, metrics, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
           ON CONFLICT (snapshot_date) DO UPDATE SET portfolio_value = EXCLUDED.portfolio_value,
               active_pool = EXCLUDED.active_pool, reserve_pool = EXCLUDED.reserve_pool,
               daily_return = EXCLUDED.daily_return, cumulative_return = EXCLUDED.cumulative_return,
               unrealized_pnl = EXCLUDED.unrealized_pnl, realized_pnl = EXCLUDED.realized_pnl,
               win_count = EXCLUDED.win_count, loss_count = EXCLUDED.loss_count, win_rate = EXCLUDED.win_rate,
               sharpe_ratio = EXCLUDED.sharpe_ratio, max_drawdown = EXCLUDED.max_drawdown,
               current_drawdown_pct = EXCLUDED.current_drawdown_pct, portfolio_heat = EXCLUDED.portfolio_heat,
               risk_tier = EXCLUDED.risk_tier, positions = EXCLUDED.positions, metrics = EXCLUDED.metrics""",
        session,
        m.total_portfolio_value,
        m.active_pool,
        m.reserve_pool,
        daily_return,
        cumulative,
        m.unrealized_pnl,
        m.realized_pnl,
        m.win_count,
        m.loss_count,
        m.win_rate,
        m.sharpe_ratio,
        m.max_drawdown,
        m.current_drawdown,
        m.portfolio_heat,
        tier.value,
        positions,
        {
            "profit_factor": m.profit_factor if m.profit_factor != float("inf") else "Infinity",
            "trade_count": m.trade_count,
            "daily_pnl": m.daily_pnl,
            "avg_win": m.avg_win,
            "avg_loss": m.avg_loss,
            "micro": {
                "trade_count": micro.trade_count,
                "win_rate": micro.win_rate,
                "realized_pnl": micro.realized_pnl,
            },
            # Seed 7.1's high-water signal, for the status and metrics views (None below the mark).
            "reserve_high_water": high_water,
        },
        now,
    )
