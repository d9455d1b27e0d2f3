"""The backtester's PostgreSQL side: loading history, persisting runs, and the background job
the HTTP API starts (`POST /api/trading/backtest`).

All SQL of the backtester lives here. Loading reads everything once, before the simulation;
saving writes the run and all its trades in one transaction at the end (trades by COPY).
While a job runs, only its `progress` is updated, at most every half second.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import structlog

from services.trading.backtest.backtester import BacktestData, Backtester
from services.trading.backtest.config import BacktestConfig, BacktestConfigError, SignalSource
from services.trading.backtest.market import MarketData, warmup_start
from services.trading.backtest.results import BacktestResult
from services.trading.backtest.signals import ACTIONS, MODES, RecommendationCsvError, read_recommendations_csv
from services.trading.core.models import Recommendation
from services.trading.core.trading_window import NEW_YORK

log = structlog.get_logger(__name__)
PROGRESS_INTERVAL_SECONDS = 0.5
Connection = asyncpg.Connection | asyncpg.Pool


# -- loading -------------------------------------------------------------------------------


async def load_backtest_data(connection: asyncpg.Connection, config: BacktestConfig) -> BacktestData:
    """The history `config` asks for: daily bars from `price_bars` (with warm-up sessions before
    the start), sectors, earnings dates, high-severity macro events and the recommendations of
    the chosen source. Unknown tickers and empty ranges are `BacktestConfigError`s."""
    first, last = warmup_start(config.start_date), config.end_date
    since, until = _day_start(first), _day_start(last + timedelta(days=1))  # [since, until)
    sectors = {r["ticker"]: r["sector"] for r in await connection.fetch("SELECT ticker, sector FROM tickers")}
    with_bars = [
        r["ticker"]
        for r in await connection.fetch(
            """SELECT DISTINCT ticker FROM price_bars WHERE interval = '1d' AND ts >= $1 AND ts < $2
           AND ($3::text[] IS NULL OR ticker = ANY($3::text[])) ORDER BY ticker""",
            since,
            until,
            list(config.tickers) or None,
        )
    ]
    _check_universe(config, sectors, with_bars)
    market = MarketData.from_rows(
        await _bars(connection, with_bars, since, until), first, last, sectors, with_bars
    )
    earnings: dict[str, list[date]] = {}
    for row in await connection.fetch(
        "SELECT ticker, earnings_date FROM earnings_calendar WHERE ticker = ANY($1::text[]) "
        "ORDER BY ticker, earnings_date",
        with_bars,
    ):
        earnings.setdefault(row["ticker"], []).append(row["earnings_date"])
    events = [
        (r["starts_at"], r["ends_at"])
        for r in await connection.fetch(
            """SELECT starts_at, ends_at FROM macro_events WHERE severity = 'high' AND starts_at < $2
           AND (ends_at IS NULL OR ends_at >= $1) ORDER BY starts_at""",
            since,
            until,
        )
    ]
    return BacktestData(
        market,
        await _recommendations(connection, config, since, until),
        frozenset(sectors),
        sectors,
        earnings,
        events,
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, NEW_YORK)


def _check_universe(config: BacktestConfig, sectors: dict[str, str], with_bars: Sequence[str]) -> None:
    unknown = [t for t in config.tickers if t not in sectors and t not in with_bars]
    if unknown:
        raise BacktestConfigError(
            "tickers", f"unknown ticker(s) {', '.join(unknown)}: not in the tickers table"
        )
    missing = [t for t in config.tickers if t not in with_bars]
    if missing or not with_bars:
        what = ", ".join(missing) if missing else "any ticker"
        raise BacktestConfigError(
            "tickers" if missing else "start_date",
            f"no daily bars for {what} between {config.start_date} and {config.end_date}: "
            "load them first (stonks-trading data load-sample, or data import-csv)",
        )


async def _bars(connection: asyncpg.Connection, tickers: Sequence[str], since, until) -> list[tuple]:
    rows = await connection.fetch(
        """SELECT ticker, ts, open::float8, high::float8, low::float8, close::float8 FROM price_bars
           WHERE interval = '1d' AND ticker = ANY($1::text[]) AND ts >= $2 AND ts < $3 ORDER BY ticker, ts""",
        list(tickers),
        since,
        until,
    )
    return [tuple(r) for r in rows]


async def _recommendations(
    connection: asyncpg.Connection, config: BacktestConfig, since, until
) -> list[Recommendation] | None:
    if config.signals is SignalSource.MOMENTUM:
        return None
    if config.signals is SignalSource.CSV:
        assert config.csv_path is not None
        try:
            return read_recommendations_csv(config.csv_path)
        except RecommendationCsvError as exc:
            raise BacktestConfigError("csv_path", str(exc)) from None
    rows = await connection.fetch(
        """SELECT id, ticker, action, confidence, mode, trend_window, thesis, generated_at FROM recommendations
           WHERE action = ANY($1::text[]) AND mode = ANY($2::text[]) AND generated_at >= $3 AND generated_at < $4
             AND ($5::text[] IS NULL OR ticker = ANY($5::text[]))
           ORDER BY generated_at, id""",
        list(ACTIONS),
        list(MODES),
        since,
        until,
        list(config.tickers) or None,
    )
    return [Recommendation.from_row(r) for r in rows]


# -- persisting ----------------------------------------------------------------------------


async def create_backtest_run(
    connection: Connection, config: BacktestConfig, backtest_id: UUID | None = None
) -> UUID:
    """Record a run as `running` (idempotent) and return its id: the API answers with it at once."""
    backtest_id = backtest_id or uuid4()
    await connection.execute(
        """INSERT INTO backtest_runs (id, start_date, end_date, initial_capital, risk_tier, config, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'running') ON CONFLICT (id) DO NOTHING""",
        backtest_id,
        config.start_date,
        config.end_date,
        config.initial_capital,
        config.risk_tier.value,
        config.to_json(),
    )
    return backtest_id


async def save_backtest(
    connection: Connection, result: BacktestResult, backtest_id: UUID | None = None
) -> UUID:
    """Write a finished (completed or failed) run and its trade log in one transaction; trades
    still open at the end are stored with no exit."""
    backtest_id = backtest_id or uuid4()
    if isinstance(connection, asyncpg.Pool):
        async with connection.acquire() as conn:
            return await save_backtest(conn, result, backtest_id)
    m = result.metrics
    async with connection.transaction():
        await create_backtest_run(connection, result.config, backtest_id)
        await connection.execute(
            """UPDATE backtest_runs SET status = $2, progress = $3, error_message = $4, final_value = $5,
                   total_return = $6, sharpe_ratio = $7, max_drawdown = $8, win_rate = $9, profit_factor = $10,
                   trade_count = $11, data_gaps = $12, equity_curve = $13, details = $14, completed_at = now()
               WHERE id = $1""",
            backtest_id,
            result.status,
            1.0 if result.completed else _fraction(result),
            result.error,
            m.final_value,
            m.total_return,
            m.sharpe_ratio,
            m.max_drawdown,
            m.win_rate,
            m.profit_factor,
            m.trade_count,
            [g.to_json() for g in result.data_gaps],
            [{"date": d.isoformat(), "value": str(round(v, 2))} for d, v in result.equity_curve],
            result.details(),
        )
        await connection.execute("DELETE FROM backtest_trades WHERE backtest_id = $1", backtest_id)
        await connection.copy_records_to_table(
            "backtest_trades",
            records=[_trade_row(backtest_id, t) for t in (*result.trades, *result.open_positions)],
            columns=[
                "backtest_id",
                "ticker",
                "side",
                "entry_price",
                "exit_price",
                "quantity",
                "pnl",
                "entry_date",
                "exit_date",
                "hold_duration_days",
                "exit_reason",
                "recommendation_id",
                "fees",
            ],
        )
    return backtest_id


def _fraction(result: BacktestResult) -> float:
    return min(1.0, len(result.equity_curve) / result.sessions) if result.sessions else 0.0


def _trade_row(backtest_id: UUID, t) -> tuple:
    return (
        backtest_id,
        t.ticker,
        t.side,
        t.entry_price,
        t.exit_price,
        t.quantity,
        t.pnl,
        t.entry_date,
        t.exit_date,
        t.hold_duration_days,
        t.exit_reason,
        t.recommendation_id,
        t.fees,
    )


async def fetch_backtest(connection: Connection, backtest_id: UUID) -> dict[str, Any] | None:
    """A stored run with its trades (oldest first), as plain values; None when unknown."""
    run = await connection.fetchrow("SELECT * FROM backtest_runs WHERE id = $1", backtest_id)
    if run is None:
        return None
    trades = await connection.fetch(
        "SELECT * FROM backtest_trades WHERE backtest_id = $1 ORDER BY id", backtest_id
    )
    return {**dict(run), "trades": [dict(t) for t in trades]}


async def _mark_failed(connection: Connection, backtest_id: UUID, error: str) -> None:
    await connection.execute(
        """UPDATE backtest_runs SET status = 'failed', error_message = $2, completed_at = now()
           WHERE id = $1""",
        backtest_id,
        error,
    )


async def mark_backtest_interrupted(pool: asyncpg.Pool, backtest_id: UUID, error: str) -> None:
    """A run still `running` when its process stops is closed as failed, with why."""
    await pool.execute(
        """UPDATE backtest_runs SET status = 'failed', error_message = $2, completed_at = now()
           WHERE id = $1 AND status = 'running'""",
        backtest_id,
        error,
    )


# -- the background job --------------------------------------------------------------------


async def run_backtest_job(pool: asyncpg.Pool, config: BacktestConfig, backtest_id: UUID) -> None:
    """Run one backtest for the API: the run is recorded `running` (if `create_backtest_run` did
    not already), its progress updated as it goes, and it ends `completed`, or `failed` with the
    error and whatever it had computed. Never raises for a failed backtest."""
    await create_backtest_run(pool, config, backtest_id)
    try:
        async with pool.acquire() as connection:
            data = await load_backtest_data(connection, config)
    except (BacktestConfigError, asyncpg.PostgresError, OSError) as exc:
        log.warning("backtest could not load its data", backtest_id=str(backtest_id), error=str(exc))
        await _mark_failed(pool, backtest_id, str(exc))
        return
    progress = [0.0]
    writer = asyncio.create_task(_write_progress(pool, backtest_id, progress))
    try:
        result = await asyncio.to_thread(Backtester(data).run, config, lambda f: progress.__setitem__(0, f))
    except Exception as exc:  # noqa: BLE001 - a config problem found late; the run must not stay running
        log.warning("backtest failed before simulating", backtest_id=str(backtest_id), error=str(exc))
        await _mark_failed(pool, backtest_id, f"{type(exc).__name__}: {exc}")
        return
    finally:
        writer.cancel()
    try:
        await save_backtest(pool, result, backtest_id)
    except (asyncpg.PostgresError, OSError) as exc:
        log.error("backtest result could not be saved", backtest_id=str(backtest_id), error=str(exc))
        await _mark_failed(pool, backtest_id, f"the result could not be saved: {exc}")
        return
    log.info(
        "backtest finished", backtest_id=str(backtest_id), status=result.status, trades=len(result.trades)
    )


async def _write_progress(pool: asyncpg.Pool, backtest_id: UUID, progress: list[float]) -> None:
    written = 0.0
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
        value = progress[0]
        if value - written >= 0.01 and math.isfinite(value):
            await pool.execute(
                "UPDATE backtest_runs SET progress = $2 WHERE id = $1 AND status = 'running'",
                backtest_id,
                min(value, 1.0),
            )
            written = value
