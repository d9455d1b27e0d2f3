"""The backtest is the live engine (issue 13): one scenario through both, compared item by item.

The live side is the demo's replay path: the engine, the paper broker, real PostgreSQL and
Redis, a simulated clock visiting each session's instants. The backtest side is the
backtester over the same bars and recommendations, with the live timing of a session
(`FillTiming.LIVE`: the open is the price all session, 5 bps of slippage on the price step, as
the paper broker fills). The scenario holds the four tickers of the bundled sample from June 2008 through 2009 (the
crash and the recovery) with the momentum signal, micro-trading on with intraday signals of
its own, and must
contain a stop-out, a take-profit, a trailing stop, entries in tranches, a circuit breaker, a
tier change, a wash sale and micro-trades; then every decision, fill, cancelled order, closed
trade, Reserve Pool entry, tier change and breaker event must be the same on both sides.

The one difference by construction is not compared: the live engine also records its exits
(stop-outs, rebalances) as decisions without a recommendation; the backtest compares them as
fills and closed trades. The engine's first Reserve Pool row records an empty pool, which the
backtest starts from without a row; and orders filled at one instant are compared in one order
(sells first, then by ticker), as the broker fills them independently.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from services.shared.db import create_pool
from services.shared.schemas import RiskTierName
from services.trading.backtest.backtester import Backtester
from services.trading.backtest.config import BacktestConfig, FillModel, FillTiming, SignalSource
from services.trading.backtest.results import BacktestResult
from services.trading.backtest.run_store import load_backtest_data
from services.trading.core import stop_loss_manager
from services.trading.core.replay_instants import sessions_between
from services.trading.core.trading_window import session_times
from services.trading.live.engine_store import EngineStore
from services.trading.live.replay import Replay
from services.trading.market import market_store, setup_steps
from services.trading.market.market_data import PriceBar
from tests.trading.engine_harness import close_pool, enable_engine

pytestmark = pytest.mark.integration

START, END = date(2008, 6, 2), date(2009, 12, 31)
CAPITAL = Decimal(10_000)
MICRO_EVERY = 9  # sessions between a ticker's intraday signals
INTRADAY_BARS = 20


async def _intraday_signals(connection: asyncpg.Connection) -> dict[str, Decimal]:
    """Five-minute bars on a session before the scenario (what a micro-trade's stop is sized
    from) and a `1d` buy signal per ticker every few sessions; the intraday ATR of each."""
    tickers = [r["ticker"] for r in await connection.fetch("SELECT ticker FROM tickers ORDER BY ticker")]
    opens, _ = session_times(date(2007, 12, 20))
    atrs = {}
    for n, ticker in enumerate(tickers):
        base = await connection.fetchval(
            "SELECT close FROM price_bars WHERE ticker = $1 AND interval = '1d' AND ts < $2 ORDER BY ts DESC LIMIT 1",
            ticker,
            opens,
        )
        bars = []
        for i in range(INTRADAY_BARS):
            mid = base * (1 + Decimal((i * 7 + n) % 11 - 5) / 1000)
            spread = base * Decimal((i % 4) + 1) / 1000
            close = (mid + spread / 3).quantize(Decimal("0.0001"))
            bars.append(
                PriceBar(
                    ticker,
                    "5m",
                    opens + timedelta(minutes=5 * (i + 1)),
                    mid,
                    mid + spread,
                    mid - spread,
                    close,
                    1000,
                )
            )
        async with connection.transaction():  # the staging table lives for one transaction
            await market_store.insert_bars(connection, bars)
        atrs[ticker] = stop_loss_manager.average_true_range(
            [stop_loss_manager.Bar(b.high, b.low, b.close) for b in bars]
        )
        for i, day in enumerate(sessions_between(START, END)):
            if (i + n) % MICRO_EVERY == 0:
                await connection.execute(
                    """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
                       VALUES ($1, 'buy', 0.85, 'paper_eligible', '1d', 'intraday breakout', $2)""",
                    ticker,
                    session_times(day)[1] - timedelta(days=0),
                )
    return atrs


async def _live(pool: asyncpg.Pool) -> dict[str, list[tuple]]:
    fetch = pool.fetch
    return {
        "decisions": [
            (
                r["created_at"],
                r["recommendation_id"],
                r["decision"],
                r["skip_reason"],
                r["computed_share_quantity"],
            )
            for r in await fetch(
                """SELECT created_at, recommendation_id, decision, skip_reason, computed_share_quantity
                   FROM trading_decisions WHERE recommendation_id IS NOT NULL ORDER BY created_at, recommendation_id"""
            )
        ],
        "fills": [
            tuple(r)
            for r in await fetch(
                """SELECT f.ticker, f.side, f.quantity, f.price, f.fee, f.reported_at, o.reason
                   FROM applied_fills f JOIN order_outbox o USING (client_order_id)
                   WHERE f.status = 'filled' ORDER BY f.reported_at, f.side = 'buy', f.applied_at"""
            )
        ],
        "cancelled orders": [
            tuple(r)
            for r in await fetch(
                """SELECT ticker, tranche_index, cancelled_at FROM order_outbox WHERE cancelled_at IS NOT NULL
                   ORDER BY cancelled_at, ticker, tranche_index"""
            )
        ],
        "closed trades": [
            tuple(r)
            for r in await fetch(
                """SELECT ticker, quantity, entry_price, exit_price, fees, pnl, entry_at, exit_at, exit_reason
                   FROM closed_trades ORDER BY exit_at, id"""
            )
        ],
        "reserve ledger": [
            (r["amount"], r["balance_after"], r["trigger_type"], r["created_at"])
            # The engine's first row records an empty pool (the backtest starts from one).
            for r in await fetch(
                "SELECT * FROM reserve_pool_ledger WHERE trigger_type <> 'initial' ORDER BY id"
            )
        ],
        "tier changes": [
            (r["previous_tier"], r["new_tier"], r["created_at"])
            for r in await fetch("SELECT * FROM risk_tier_history WHERE verdict = 'changed' ORDER BY id")
        ],
        "breaker events": [
            (r["trigger_type"], r["ticker"], r["created_at"])
            for r in await fetch("SELECT * FROM circuit_breaker_events ORDER BY created_at, id")
        ],
        "wash sales": [
            (r["ticker"], r["n"])
            for r in await fetch(
                "SELECT ticker, count(*) AS n FROM tax_lots WHERE wash_sale_flag GROUP BY ticker ORDER BY ticker"
            )
        ],
    }


def _backtest(result: BacktestResult) -> dict[str, list[tuple]]:
    tiers = [e for e in result.events if e.kind == "risk_tier"]
    washed: dict[str, int] = {}
    for w in result.tax.wash_sales:
        washed[w.ticker] = washed.get(w.ticker, 0) + 1
    return {
        "decisions": sorted(
            (d.decided_at, d.recommendation_id, "act" if d.acted else "skip", d.reason, d.quantity)
            for d in result.decisions
        ),
        "fills": [(f.ticker, f.side, f.quantity, f.price, f.fee, f.at, f.reason) for f in result.fills],
        "cancelled orders": sorted(
            (e.ticker, int(e.detail.split()[1]) if e.detail.startswith("tranche") else 0, e.at)
            for e in result.events
            if e.kind in ("tranche_cancelled", "order_not_filled")
        ),
        "closed trades": [
            (
                t.ticker,
                t.quantity,
                t.entry_price,
                t.exit_price,
                t.fees,
                t.pnl,
                t.entry_at,
                t.exit_at,
                t.exit_reason,
            )
            for t in result.trades
        ],
        "reserve ledger": [
            (e.amount, e.balance_after, e.trigger_type.value, e.created_at) for e in result.reserve_ledger
        ],
        "tier changes": [(*e.detail.split(":")[0].split(" -> "), e.at) for e in tiers],
        "breaker events": [
            (e.kind.split(":", 1)[1], e.ticker, e.at)
            for e in result.events
            if e.kind.startswith("circuit_breaker:")
        ],
        "wash sales": sorted(washed.items()),
    }


# Orders sent at one instant are filled independently of each other, so each side lists them
# in the same order: sells before buys, then by ticker.
_SAME_INSTANT_ORDER = {
    "fills": lambda f: (f[5], f[1] == "buy", f[0]),
    "closed trades": lambda t: (t[7], t[0], t[6]),
}


def _in_order(name: str, items: list[tuple]) -> list[tuple]:
    key = _SAME_INSTANT_ORDER.get(name)
    return sorted(items, key=key) if key else items


def _normal(item: tuple) -> tuple:
    """Instants in UTC and numbers without trailing zeros, so equal values compare equal."""
    return tuple(
        v.astimezone(UTC) if isinstance(v, datetime) else v.normalize() if isinstance(v, Decimal) else v
        for v in item
    )


def _first_difference(live: list[tuple], backtest: list[tuple]) -> str | None:
    for n, (a, b) in enumerate(zip(live, backtest, strict=False)):
        if _normal(a) != _normal(b):
            before = "".join(f"\n  both     {x}" for x in live[max(n - 3, 0) : n])
            return f"item {n}:{before}\n  live     {a}\n  backtest {b}"
    if len(live) != len(backtest):
        return f"live has {len(live)} items, the backtest {len(backtest)}"
    return None


async def test_the_backtest_does_what_the_live_engine_does(database_url: str, redis_client) -> None:
    pool = await create_pool(database_url, max_size=8)
    try:
        async with pool.acquire() as connection:
            await setup_steps.load_sample_market(connection)
            await setup_steps.write_momentum_signals(connection)
            intraday_atr = await _intraday_signals(connection)
        await enable_engine(pool, micro_trading_enabled=True)
        await Replay(pool, redis_client, START, END, capital=CAPITAL).run()
        live = await _live(pool)
        later_tranches_filled = await pool.fetchval(
            """SELECT count(*) FROM order_outbox o JOIN applied_fills f USING (client_order_id)
               WHERE o.tranche_index > 0 AND f.status = 'filled'"""
        )
        settings = await EngineStore(pool).load_settings()
        epoch = await pool.fetchval("SELECT epoch FROM engine_state WHERE id = 1")
        config = BacktestConfig(
            START,
            END,
            CAPITAL,
            RiskTierName.MODERATE,
            signals=SignalSource.DATABASE,
            fill=FillModel(timing=FillTiming.LIVE),
            settings=dataclasses.replace(settings, risk_tier=RiskTierName.MODERATE),
        )
        async with pool.acquire() as connection:
            data = await load_backtest_data(connection, config)
    finally:
        await close_pool(pool)
    # The engine takes recommendations from its epoch on (older rows are history).
    recs = [r for r in data.recommendations or () if r.generated_at >= epoch]
    result = Backtester(dataclasses.replace(data, recommendations=recs, intraday_atr=intraday_atr)).run(
        config
    )
    assert result.completed, result.error
    backtest = _backtest(result)

    trades = live["closed trades"]
    reasons = {t[-1] for t in trades}
    assert {"stop_loss", "take_profit", "trailing_stop", "micro_exit"} <= reasons, reasons
    assert later_tranches_filled > 0
    assert live["breaker events"] and live["tier changes"] and live["wash sales"]
    differences = {
        name: diff
        for name in live
        if (diff := _first_difference(_in_order(name, live[name]), _in_order(name, backtest[name])))
        is not None
    }
    assert not differences, "\n".join(f"{name}: {diff}" for name, diff in differences.items())
