"""The engine's scheduled and protective duties on real PostgreSQL and Redis: the weekly
rebalance, the session close (risk tier, Sharpe, emergency alert, reserve high-water), the
daily-loss breaker during other halts, breaker resumptions, fees of a closed trade and the
rapid-move read (seed tasks 7.1, 13.1, 15, 16.1, 25)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from services.shared.orders import FillReport
from services.shared.schemas import NotificationEventType, OrderReason, OrderSide
from services.trading.core import performance_tracker
from services.trading.core.engine_settings import EngineSettings
from services.trading.live import owner_reports
from services.trading.live.fill_handler import apply_report
from services.trading.market.recent_prices import rapid_moves
from services.trading.notifications.schedule import ScheduledReport
from tests.trading.engine_harness import (
    RecordingNotifier,
    add_bar,
    at,
    build_stack,
    enable_engine,
    recommend,
    sessions,
)

pytestmark = pytest.mark.integration

FILL_DAY = date(2024, 3, 4)
CONCENTRATED = {"moderate": {"base_allocation_pct": "0.5", "max_position_pct": "0.6", "max_sector_pct": "1"}}


@pytest.fixture
async def make_stack(market, redis_client: aioredis.Redis):
    """Builds stacks with a recording notifier and always stops their engines."""
    pool, _ = market
    built = []

    async def make(start):
        stack = await build_stack(pool, redis_client, start)
        stack.engine.notifier = RecordingNotifier()
        built.append(stack)
        return stack

    yield make
    for stack in built:
        await stack.engine.stop()


async def _snapshots(pool, days, values) -> None:
    """End-of-day history before the session under test."""
    for day, value in zip(days, values):
        await pool.execute(
            """INSERT INTO portfolio_snapshots (snapshot_date, portfolio_value, active_pool, reserve_pool, risk_tier)
               VALUES ($1, $2, $2, 0, 'moderate')""",
            day,
            Decimal(value),
        )


async def _concentrated_buy(stack, days):
    """Half the account in XYZ, bought at the open of the session after the seeded ones."""
    pool = stack.pool
    await enable_engine(
        pool, gradual_entry_tranches=1, absolute_position_cap=Decimal(20000), risk_tier_overrides=CONCENTRATED
    )
    bought_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", bought_day, open_=115.0, close=116.0)
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    await stack.step(at(bought_day, 9, 45))
    assert await pool.fetchval("SELECT count(*) FROM tax_lots") == 1
    return bought_day


# -- 1. the weekly rebalance ---------------------------------------------------------------


async def test_a_deferred_weekly_rebalance_runs_once_the_halt_ends(market, make_stack) -> None:
    pool, days = market
    stack = await make_stack(at(days[-1], 16, 5))
    bought_day = await _concentrated_buy(stack, days)  # Wed 2024-02-14, ISO week 7
    week_days = sessions(bought_day, 4)[1:]  # Thu, Fri, then Tue 2024-02-20 (Monday a holiday)
    for day in week_days:
        await add_bar(pool, "XYZ", day, open_=116.0, close=116.0)
    tuesday = week_days[-1]
    # The position is now far above the tier's limit, and a volatility halt is in force.
    await enable_engine(
        pool, risk_tier_overrides={"moderate": {"base_allocation_pct": "0.05", "max_position_pct": "0.1"}}
    )
    await pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, reason, cooldown_expires,
               created_at) VALUES ('volatility', 3, 3, 'test halt', $1, $2)""",
        at(tuesday, 10, 40),
        at(tuesday, 9, 40),
    )
    await stack.step(at(tuesday, 9, 45))
    assert await pool.fetchval("SELECT last_rebalance_week FROM engine_state") == "2024-W07"
    assert (
        await pool.fetchval("SELECT count(*) FROM order_outbox WHERE payload->>'reason' = 'rebalance'") == 0
    )
    await stack.step(at(tuesday, 10, 45))
    assert await pool.fetchval("SELECT last_rebalance_week FROM engine_state") == "2024-W08"
    assert (
        await pool.fetchval("SELECT count(*) FROM order_outbox WHERE payload->>'reason' = 'rebalance'") == 1
    )


# -- 2, 3, 6, 7. the session close --------------------------------------------------------


async def test_a_close_that_fails_part_way_changes_the_tier_once(market, make_stack) -> None:
    pool, days = market
    await enable_engine(pool, risk_tier="aggressive")
    # 16.7% below the peak: one downgrade (aggressive -> moderate), short of the emergency.
    await _snapshots(pool, days[-3:-1], [12000, 12000])
    stack = await make_stack(at(days[-1], 15, 0))
    await pool.execute("ALTER TABLE portfolio_snapshots ADD CONSTRAINT fail_once CHECK (false) NOT VALID")
    await stack.step(at(days[-1], 16, 5))
    assert await pool.fetchval("SELECT count(*) FROM engine_faults WHERE component = 'session_close'") >= 1
    await pool.execute("ALTER TABLE portfolio_snapshots DROP CONSTRAINT fail_once")
    await stack.step(at(days[-1], 16, 10))
    assert await pool.fetchval("SELECT risk_tier FROM trading_engine_config") == "moderate"
    history = await pool.fetch("SELECT * FROM risk_tier_history")
    assert [(h["previous_tier"], h["new_tier"]) for h in history] == [("aggressive", "moderate")]
    assert history[0]["created_at"] == at(days[-1], 16, 10)  # written by the close that completed
    assert await pool.fetchval("SELECT last_close_processed FROM engine_state") == days[-1]
    assert stack.engine.notifier.kinds().count("risk_tier_changed") == 1


async def test_the_snapshot_sharpe_counts_the_days_own_close(market, make_stack) -> None:
    pool, days = market
    history = [10000, 10100, 9950, 10050, 10020]
    await _snapshots(pool, days[-6:-1], history)
    stack = await make_stack(at(days[-1], 15, 0))
    await stack.step(at(days[-1], 16, 5))
    snapshot = await pool.fetchrow("SELECT * FROM portfolio_snapshots WHERE snapshot_date = $1", days[-1])
    today = snapshot["portfolio_value"]
    assert today == Decimal(10000)
    # docs/contracts.md section 6: trailing 30 returns of end-of-day equity, today's close included.
    expected = performance_tracker.sharpe_ratio(performance_tracker.daily_returns([*history, today]))
    assert snapshot["sharpe_ratio"] == pytest.approx(expected)
    assert snapshot["sharpe_ratio"] != pytest.approx(
        performance_tracker.sharpe_ratio(performance_tracker.daily_returns(history))
    )


async def test_emergency_alert_with_an_empty_reserve_once_per_crossing(market, make_stack) -> None:
    pool, days = market
    await _snapshots(pool, days[-3:-1], [13000, 13000])  # the account's 10,000 is 23% below
    stack = await make_stack(at(days[-1], 15, 0))
    next_day = sessions(days[-1], 2)[1]
    await stack.step(at(days[-1], 16, 5))
    await stack.step(at(next_day, 16, 5))
    alerts = [data for kind, data in stack.engine.notifier.events if kind == "emergency_liquidation"]
    assert len(alerts) == 1  # the second close is still beyond the threshold: no new crossing
    alert = alerts[0]
    assert alert["reserve_released"] == 0 and alert["positions_closed"] == 0
    assert alert["total_value"] == Decimal(10000)
    assert alert["drawdown"] == pytest.approx(3000 / 13000)
    assert "exceeds the emergency threshold" in alert["reason"]
    assert await pool.fetchval("SELECT risk_tier FROM trading_engine_config") == "conservative"


async def test_the_snapshot_of_an_emergency_day_shows_the_reserve_released(market, make_stack) -> None:
    # Issue 15: the snapshot was written from the figures computed before the release, so it
    # showed the reserve the emergency rule had just emptied into the Active Pool.
    pool, days = market
    await pool.execute(
        """INSERT INTO reserve_pool_ledger (amount, balance_after, trigger_type, notes, created_at)
           VALUES (1000, 1000, 'manual_adjustment', 'test', $1)""",
        at(days[-2], 16, 0),
    )
    await _snapshots(pool, days[-3:-1], [13000, 13000])  # the account's 10,000 is 23% below
    stack = await make_stack(at(days[-1], 15, 0))
    await stack.step(at(days[-1], 16, 5))
    assert await pool.fetchval("SELECT balance_after FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1") == 0
    snapshot = await pool.fetchrow("SELECT * FROM portfolio_snapshots WHERE snapshot_date = $1", days[-1])
    assert (snapshot["reserve_pool"], snapshot["active_pool"]) == (0, snapshot["portfolio_value"])


async def test_the_reserve_high_water_signal_is_kept_in_the_snapshot(market, make_stack) -> None:
    pool, days = market
    await pool.execute(
        """INSERT INTO reserve_pool_ledger (amount, balance_after, trigger_type, notes, created_at)
           VALUES (4000, 4000, 'manual_adjustment', 'test', $1)""",
        at(days[-2], 16, 0),
    )
    stack = await make_stack(at(days[-1], 15, 0))
    await stack.step(at(days[-1], 16, 5))
    metrics = await pool.fetchval(
        "SELECT metrics FROM portfolio_snapshots WHERE snapshot_date = $1", days[-1]
    )
    assert "above 0.30 of total value 10000" in metrics["reserve_high_water"]
    # The owner hears it in that day's summary (the seed's event types have none of its own).
    summary = await _daily_summary(pool, days[-1])
    assert summary.data["reserve_high_water"] == metrics["reserve_high_water"]
    assert summary.data["reserve"] == Decimal(4000) and summary.data["session"] == days[-1]


async def test_no_high_water_signal_below_the_mark(market, make_stack) -> None:
    pool, days = market
    stack = await make_stack(at(days[-1], 15, 0))
    await stack.step(at(days[-1], 16, 5))
    metrics = await pool.fetchval(
        "SELECT metrics FROM portfolio_snapshots WHERE snapshot_date = $1", days[-1]
    )
    assert metrics["reserve_high_water"] is None
    assert (await _daily_summary(pool, days[-1])).data["reserve_high_water"] is None


async def _daily_summary(pool, day):
    report = ScheduledReport(NotificationEventType.DAILY_SUMMARY, day.isoformat(), at(day, 16, 30), day, day)
    return await owner_reports.daily_summary(pool, report, at(day, 16, 31))


# -- 5. the daily-loss breaker during a shorter halt ---------------------------------------


async def test_daily_loss_trips_during_a_volatility_halt(market, make_stack) -> None:
    pool, days = market
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('ABC', 'Energy')")
    stack = await make_stack(at(days[-1], 16, 5))
    bought_day = await _concentrated_buy(stack, days)
    gap_day = sessions(bought_day, 2)[1]
    await add_bar(pool, "XYZ", gap_day, open_=104.0, close=103.0)  # -10% overnight
    await pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, reason, cooldown_expires,
               created_at) VALUES ('volatility', 3, 3, 'test halt', $1, $2)""",
        at(gap_day, 10, 40),
        at(gap_day, 9, 40),
    )
    await stack.step(at(gap_day, 9, 45))
    event = await pool.fetchrow("SELECT * FROM circuit_breaker_events WHERE trigger_type = 'daily_loss'")
    assert event is not None and event["cooldown_expires"] == at(sessions(gap_day, 2)[1], 9, 30)
    await stack.step(at(gap_day, 9, 55))  # the next stop check: the halt in force now is the daily loss
    assert (
        await pool.fetchval("SELECT count(*) FROM circuit_breaker_events WHERE trigger_type = 'daily_loss'")
        == 1
    )


# -- 9. a ticker's cooldown ending is announced --------------------------------------------


async def test_a_ticker_cooldown_ending_is_announced(market, make_stack) -> None:
    pool, days = market
    stack = await make_stack(at(days[-1], 16, 5))
    await pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker, reason,
               cooldown_expires, created_at) VALUES ('single_position', 0.08, 0.09, 'XYZ', 'test', $1, $2)""",
        at(days[-1], 16, 30),
        at(days[-2], 16, 30),
    )
    await stack.step(at(days[-1], 16, 35))
    resumed = [data for kind, data in stack.engine.notifier.events if kind == "circuit_breaker_resumed"]
    assert [r["ticker"] for r in resumed] == ["XYZ"]
    assert await pool.fetchval("SELECT resolved_at FROM circuit_breaker_events") == at(days[-1], 16, 35)


# -- 4. a closed trade's fees --------------------------------------------------------------


async def _fill(pool, side: OrderSide, quantity: str, price: str, fee: str, minute: int) -> FillReport:
    client_order_id = uuid.uuid4().hex
    order_id = await pool.fetchval(
        """INSERT INTO broker_orders (client_order_id, job_id, ticker, side, quantity, reason, status)
           VALUES ($1, $2, 'XYZ', $3, $4, 'entry', 'filled') RETURNING id""",
        client_order_id,
        uuid.uuid4(),
        side.value,
        Decimal(quantity),
    )
    return FillReport(
        client_order_id=client_order_id,
        trading_decision_id=uuid.uuid4(),
        broker_order_id=order_id,
        ticker="XYZ",
        side=side,
        reason=OrderReason.TAKE_PROFIT,
        status="filled",
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        at=at(FILL_DAY, 10, minute),
    )


async def test_a_closed_trade_carries_its_entry_commission_pro_rata(market) -> None:
    pool, _ = market
    engine_settings = EngineSettings(enabled=True)
    await apply_report(pool, await _fill(pool, OrderSide.BUY, "10", "100", "2", 0), engine_settings)
    first = await apply_report(pool, await _fill(pool, OrderSide.SELL, "4", "110", "1", 5), engine_settings)
    # As the backtester's book: the exit commission plus 4/10 of the entry's.
    assert first.closed_trade.fees == Decimal("1.8")
    assert first.closed_trade.pnl == Decimal("38.2")
    assert first.siphon.amount == Decimal("38.2") * Decimal("0.20")
    second = await apply_report(pool, await _fill(pool, OrderSide.SELL, "6", "90", "1", 10), engine_settings)
    assert second.closed_trade.fees == Decimal("2.2")
    assert await pool.fetchval("SELECT sum(fees) FROM closed_trades") == Decimal(4)  # every commission, once
    # A new position after the account was flat carries only its own buy's commission.
    await apply_report(pool, await _fill(pool, OrderSide.BUY, "5", "100", "0.5", 15), engine_settings)
    third = await apply_report(pool, await _fill(pool, OrderSide.SELL, "5", "101", "0", 20), engine_settings)
    assert third.closed_trade.fees == Decimal("0.5")


# -- 8. rapid price moves ------------------------------------------------------------------


async def test_rapid_moves_read_the_last_fifteen_minutes_of_intraday_bars(market) -> None:
    pool, days = market
    day = sessions(days[-1], 2)[1]
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('QQQ', 'Technology'), ('OLD', 'Energy')")
    bars = [
        ("XYZ", 10, 0, "116"),
        ("XYZ", 10, 5, "117"),
        ("XYZ", 10, 10, "110"),
        ("QQQ", 10, 5, "50"),
        ("QQQ", 10, 10, "51"),
        ("OLD", 9, 40, "100"),
        ("OLD", 10, 10, "90"),
    ]
    await pool.executemany(
        "INSERT INTO price_bars VALUES ($1, '5m', $2, $3, $3, $3, $3, 100)",
        [(t, at(day, h, m), Decimal(p)) for t, h, m, p in bars],
    )
    now = at(day, 10, 12)
    moves = await rapid_moves(pool, ["XYZ", "QQQ", "OLD"], now)
    # XYZ fell 5.98% from 117 within 15 minutes; QQQ rose 2%; OLD's 100 is older than 15 minutes.
    assert [(m.ticker, m.from_price, m.to_price) for m in moves] == [("XYZ", Decimal(117), Decimal(110))]
    assert await rapid_moves(pool, ["XYZ"], now, since=at(day, 10, 10)) == ()  # already acted on
    assert await rapid_moves(pool, ["XYZ"], now + timedelta(minutes=30)) == ()


async def test_a_rapid_fall_is_acted_on_before_the_next_stop_check(market, make_stack) -> None:
    pool, days = market
    stack = await make_stack(at(days[-1], 16, 5))
    bought_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", bought_day, open_=115.0, close=116.0)
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    await stack.step(at(bought_day, 9, 45))  # bought; the protective pass ran at 09:45
    stop = await pool.fetchval("SELECT stop_loss_price FROM position_stop_levels WHERE active")
    await pool.executemany(
        "INSERT INTO price_bars VALUES ('XYZ', '1m', $1, $2, $2, $2, $2, 100)",
        [(at(bought_day, 9, 46), Decimal(116)), (at(bought_day, 9, 47), stop - 3)],
    )
    await stack.step(at(bought_day, 9, 48))  # three minutes later: the 300 s check is not due
    trade = await pool.fetchrow("SELECT * FROM closed_trades WHERE ticker = 'XYZ'")
    assert trade is not None and trade["exit_reason"] == "stop_loss"
