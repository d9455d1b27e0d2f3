"""What a tearsheet shows, read from PostgreSQL: the live account's snapshots, tier history,
breaker events and skipped decisions, or a stored backtest run; and the benchmark.

The sample market has no SPY: the benchmark is an equal-weight index of the tickers with
daily bars in the period (each ticker's close relative to its first close, averaged), and
the tearsheet says so."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg

from services.trading.backtest import run_store
from services.trading.core.trading_window import NEW_YORK
from services.trading.live import session_close
from services.trading.reports.tearsheet import Headline, Tearsheet, live_headline

Executor = asyncpg.Pool | asyncpg.Connection
BENCHMARK = "an equal-weight index of the sample tickers"


class NoSuchBacktest(LookupError):
    """No stored backtest has this id."""


class NothingToReport(LookupError):
    """The subject exists but has nothing a tearsheet can show yet: a backtest still running
    or failed, or a live account with no end-of-day snapshot."""


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time.min, NEW_YORK), datetime.combine(
        last + timedelta(days=1), time.min, NEW_YORK
    )


async def equal_weight_index(
    executor: Executor, first: date, last: date, tickers: list[str] | None = None
) -> tuple[tuple[date, float], ...]:
    """Mean of each ticker's close over its first close in the period, by session day."""
    since, until = _bounds(first, last)
    rows = await executor.fetch(
        """SELECT ticker, ts, close FROM price_bars WHERE interval = '1d' AND ts >= $1 AND ts < $2
           AND ($3::text[] IS NULL OR ticker = ANY($3::text[])) ORDER BY ts, ticker""",
        since,
        until,
        tickers,
    )
    first_close: dict[str, float] = {}
    by_day: dict[date, list[float]] = defaultdict(list)
    for r in rows:
        close = float(r["close"])
        base = first_close.setdefault(r["ticker"], close)
        by_day[r["ts"].astimezone(NEW_YORK).date()].append(close / base)
    return tuple((d, sum(v) / len(v)) for d, v in sorted(by_day.items()))


async def live_tearsheet(executor: Executor, today: date) -> Tearsheet:
    snapshots = await executor.fetch(
        "SELECT snapshot_date, portfolio_value, reserve_pool FROM portfolio_snapshots "
        "WHERE snapshot_date < $1 ORDER BY snapshot_date",
        today,
    )
    if not snapshots:
        raise NothingToReport("the account has no end-of-day snapshots yet: nothing to report")
    first, last = snapshots[0]["snapshot_date"], snapshots[-1]["snapshot_date"]
    curve = await session_close.equity_curve(executor, today)  # what the dashboard reads
    trades = await session_close.closed_trades(executor)
    since, until = _bounds(first, last)
    tiers = await executor.fetch(
        "SELECT created_at, previous_tier, new_tier, reason FROM risk_tier_history "
        "WHERE verdict = 'changed' AND created_at >= $1 AND created_at < $2 ORDER BY id",
        since,
        until,
    )
    breakers = await executor.fetch(
        "SELECT created_at, trigger_type, reason FROM circuit_breaker_events "
        "WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
        since,
        until,
    )
    skips = await executor.fetch(
        "SELECT skip_reason, count(*) AS n FROM trading_decisions WHERE decision = 'skip' "
        "AND created_at >= $1 AND created_at < $2 GROUP BY skip_reason ORDER BY n DESC, skip_reason",
        since,
        until,
    )
    day = lambda t: t.astimezone(NEW_YORK).date()  # noqa: E731
    return Tearsheet(
        title="Trading account tearsheet",
        returns_label="Live account",
        subject=f"The live account, {first} to {last} (end-of-day values); benchmark: {BENCHMARK}.",
        headline=live_headline(curve, trades, curve[0]),
        equity=tuple((r["snapshot_date"], r["portfolio_value"]) for r in snapshots),
        benchmark=await equal_weight_index(executor, first, last),
        benchmark_name=BENCHMARK,
        reserve=tuple((r["snapshot_date"], r["reserve_pool"]) for r in snapshots),
        tier_changes=tuple(
            (day(r["created_at"]), r["previous_tier"], r["new_tier"], r["reason"]) for r in tiers
        ),
        breaker_events=tuple((day(r["created_at"]), r["trigger_type"], r["reason"]) for r in breakers),
        skip_reasons=tuple((r["skip_reason"], r["n"]) for r in skips),
        notes=(
            "Headline figures are the dashboard's (core/performance_tracker.py): Sharpe of the last 30 "
            "daily returns, max drawdown of the end-of-day values, win rate and profit factor of "
            "standard (not micro) trades.",
            f"Benchmark: {BENCHMARK} (the sample market has no SPY).",
        ),
    )


async def backtest_tearsheet(executor: Executor, backtest_id: UUID) -> Tearsheet:
    async with _connection(executor) as connection:
        run = await run_store.fetch_backtest(connection, backtest_id)
    if run is None:
        raise NoSuchBacktest(f"no backtest {backtest_id}")
    if run["status"] != "completed":
        raise NothingToReport(
            f"backtest {backtest_id} is {run['status']}: only a completed run has a tearsheet"
        )
    equity = tuple((date.fromisoformat(p["date"]), Decimal(p["value"])) for p in run["equity_curve"])
    tickers = sorted({t["ticker"] for t in run["trades"]}) or None
    details = run.get("details") or {}
    events = details.get("events") or []
    event_day = lambda e: date.fromisoformat(e["at"][:10])  # noqa: E731
    return Tearsheet(
        title=f"Backtest tearsheet {backtest_id}",
        subject=f"Backtest {run['start_date']} to {run['end_date']}, {run['risk_tier']} tier, "
        f"${run['initial_capital']:,} capital; benchmark: {BENCHMARK}.",
        # The stored run's figures: what the Backtesting page shows.
        headline=Headline(
            final_value=run["final_value"],
            total_return=run["total_return"],
            sharpe_ratio=run["sharpe_ratio"],
            max_drawdown=run["max_drawdown"],
            win_rate=run["win_rate"],
            profit_factor=run["profit_factor"] if run["profit_factor"] is not None else float("inf"),
            trade_count=run["trade_count"],
        ),
        equity=((run["start_date"] - timedelta(days=1), run["initial_capital"]), *equity),
        benchmark=await equal_weight_index(executor, run["start_date"], run["end_date"], tickers),
        benchmark_name=BENCHMARK,
        tier_changes=tuple(
            (event_day(e), "", "", e["detail"])
            for e in events
            if e["kind"] in ("risk_tier", "emergency_release")
        ),
        breaker_events=tuple(
            (event_day(e), e["kind"], e["detail"])
            for e in events
            if e["kind"].startswith(("breaker", "circuit_breaker"))
        ),
        skip_reasons=tuple(
            sorted(
                (
                    (str(k), int(v))
                    for k, v in ((details.get("decisions") or {}).get("skipped_by_check") or {}).items()
                ),
                key=lambda kv: (-kv[1], kv[0]),
            )
        ),
        notes=(
            "Headline figures are the stored run's, as the Backtesting page shows them (Sharpe over the whole run).",
            "A stored backtest keeps no Reserve Pool by day: that chart is the live account's only; "
            "tier changes and breaker events are the run's recorded events.",
        ),
    )


class _connection:
    """A connection from a pool, or the connection given."""

    def __init__(self, executor: Executor) -> None:
        self.executor, self.held = executor, None

    async def __aenter__(self) -> asyncpg.Connection:
        if isinstance(self.executor, asyncpg.Pool):
            self.held = await self.executor.acquire()
            return self.held
        return self.executor

    async def __aexit__(self, *exc: object) -> None:
        if self.held is not None:
            await self.executor.release(self.held)  # type: ignore[union-attr]
