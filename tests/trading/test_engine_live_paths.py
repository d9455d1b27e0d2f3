"""Live paths through the real servers that no other test covers (issue 15): what the engine
reads from its tables reaching its decisions, and the events it raises reaching the owner.
Each runs the real engine and paper broker on PostgreSQL and Valkey."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from services.shared.schemas import NotificationChannel
from services.trading.notifications.settings import NotificationSettings
from tests.trading.engine_harness import (
    RISING,
    RecordingNotifier,
    add_bar,
    at,
    build_stack,
    recommend,
    seed_ticker,
    sessions,
)
from tests.trading.notifications.conftest import RecordingChannel, make_service

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("sessions_ahead", "expected"),
    [(1, "skip"), (3, "half"), (6, "normal")],
)
async def test_earnings_dates_from_the_calendar_reach_the_decision(
    market, redis_client: aioredis.Redis, sessions_ahead: int, expected: str
) -> None:
    """An `earnings_calendar` row decides the entry: skipped 1 session before, half size and a
    0.7x stop at 3 (within `earnings_reduce_sessions`), untouched at 6."""
    pool, days = market
    day = sessions(days[-1], 2)[1]
    earnings = sessions(day, sessions_ahead + 1)[sessions_ahead]
    await pool.execute(
        "INSERT INTO earnings_calendar (ticker, earnings_date, source, confirmed) VALUES ('XYZ', $1, 'test', true)",
        earnings,
    )
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    try:
        rec = await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
        await built.step(at(day, 9, 45))
        decision = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", rec)
        adjustments = {a["name"]: a for a in decision["decision_trace"]["sizing"]["adjustments"]}
        if expected == "skip":
            assert decision["decision"] == "skip"
            assert f"earnings in {sessions_ahead} trading session" in decision["skip_reason"]
            assert await pool.fetchval("SELECT count(*) FROM broker_orders") == 0
            return
        assert decision["decision"] == "act", decision["skip_reason"]
        levels = await pool.fetchrow("SELECT * FROM position_stop_levels WHERE active AND ticker = 'XYZ'")
        multiple = (levels["entry_price"] - levels["stop_loss_price"]) / levels["atr_value"]
        if expected == "half":
            assert decision["earnings_proximity_flag"] is True
            assert Decimal(str(adjustments["earnings_proximity"]["factor"])) == Decimal("0.5")
            assert abs(multiple - Decimal("1.4")) < Decimal("0.001")  # 2.0x ATR tightened by 0.7
        else:
            assert decision["earnings_proximity_flag"] is False and "earnings_proximity" not in adjustments
            assert abs(multiple - Decimal("2.0")) < Decimal("0.001")
    finally:
        await built.engine.stop()


async def test_a_correlation_refresh_at_the_session_close_reaches_the_sizer(
    market, redis_client: aioredis.Redis
) -> None:
    """The session close recomputes the correlations from the day's bars, and the next buy is
    sized (here refused) with the new matrix, its check recorded in the decision."""
    pool, days = market
    zigzag = [60 + (1.0 if i % 2 else -1.0) for i in range(len(days))]
    await seed_ticker(pool, "ABC", zigzag, sector="Energy")
    day1, day2 = sessions(days[-1], 3)[1:]
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    try:
        await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
        await built.step(at(day1, 9, 45))
        held = await built.engine.store.held()
        positions = [h.position for h in held.positions({})]
        assert [p.ticker for p in positions] == ["XYZ"]
        assert built.engine.correlations.get_portfolio_correlation("ABC", positions) < 0.5
        # ABC's history turns out to move with XYZ's (a corrected feed): the same path, halved.
        await pool.execute("DELETE FROM price_bars WHERE ticker = 'ABC'")
        await seed_ticker(pool, "ABC", [c / 2 for c in RISING], sector="Energy")
        await add_bar(pool, "XYZ", day1, open_=RISING[-1], close=RISING[-1] + 0.5)
        await add_bar(pool, "ABC", day1, open_=RISING[-1] / 2, close=(RISING[-1] + 0.5) / 2)
        await built.step(at(day1, 16, 5))  # the session close refreshes the matrix
        cached = await pool.fetchval(
            "SELECT correlation_coefficient FROM correlation_matrix_cache WHERE 'ABC' IN (ticker_a, ticker_b)"
        )
        assert cached > 0.99
        assert built.engine.correlations.get_portfolio_correlation("ABC", positions) > 0.8
        rec = await recommend(pool, "ABC", at(day1, 16, 10), confidence=0.9)
        await built.step(at(day2, 9, 45))
        decision = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", rec)
        assert decision["decision"] == "skip" and "weighted correlation" in decision["skip_reason"]
        assert Decimal(decision["correlation_check_result"]["factor"]) == 0
        assert decision["correlation_check_result"]["reason"] == decision["skip_reason"]
    finally:
        await built.engine.stop()


async def test_the_single_position_breaker_trips_on_a_live_position_and_cools_the_ticker(
    market, redis_client: aioredis.Redis
) -> None:
    """A held position down more than 8% from its entry (its stop further away) is closed by the
    single-position breaker through the loop; the ticker cools down, the owner hears of both."""
    pool, days = market
    await pool.execute(
        "UPDATE trading_engine_config SET risk_tier_overrides = $1",
        {"moderate": {"stop_loss_atr_multiplier": "5"}},  # a stop wider than the breaker's 8%
    )
    day1, day2 = sessions(days[-1], 3)[1:]
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    built.engine.notifier = RecordingNotifier()
    try:
        await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
        await built.step(at(day1, 9, 45))
        levels = await pool.fetchrow("SELECT * FROM position_stop_levels WHERE active AND ticker = 'XYZ'")
        limit = levels["entry_price"] * Decimal("0.92")
        assert levels["stop_loss_price"] < limit  # the breaker, not the stop, must act
        gap = float((levels["stop_loss_price"] + limit) / 2)
        await add_bar(pool, "XYZ", day1, open_=RISING[-1], close=RISING[-1])
        await add_bar(pool, "XYZ", day2, open_=gap, close=gap)
        await built.step(at(day2, 9, 45))
        event = await pool.fetchrow(
            "SELECT * FROM circuit_breaker_events WHERE trigger_type = 'single_position'"
        )
        assert event is not None and event["ticker"] == "XYZ" and event["cooldown_expires"] > at(day2, 9, 45)
        trade = await pool.fetchrow("SELECT * FROM closed_trades WHERE ticker = 'XYZ'")
        assert trade is not None and trade["exit_reason"] == "emergency" and trade["pnl"] < 0
        kinds = built.engine.notifier.kinds()
        assert "circuit_breaker_triggered" in kinds and "large_trade_pnl" in kinds
        again = await recommend(pool, "XYZ", at(day2, 10, 0), confidence=0.9)
        await built.step(at(day2, 10, 5))
        refused = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", again)
        assert refused["decision"] == "skip" and "cooling down" in refused["skip_reason"]
    finally:
        await built.engine.stop()


async def test_three_live_stop_outs_within_thirty_minutes_trip_the_volatility_breaker(
    market, redis_client: aioredis.Redis
) -> None:
    """Three positions stopped out through the loop (orders filled, trades closed) halt new
    entries for an hour: the volatility breaker counts the live fills."""
    pool, days = market
    # Each rises in its own rhythm: their daily returns do not move together, so the buys on
    # their way do not refuse one another for correlation.
    zigzags = {"AAA": lambda i: (i % 2) * 1.5, "BBB": lambda i: ((i // 2) % 2) * 1.5}
    for ticker, sector in (("AAA", "Energy"), ("BBB", "Health")):
        prices = [p + zigzags[ticker](i) for i, p in enumerate(RISING)]
        await seed_ticker(pool, ticker, prices, sector=sector)
    day1, day2 = sessions(days[-1], 3)[1:]
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5), cash=Decimal(30_000))
    built.engine.notifier = RecordingNotifier()
    try:
        for ticker in ("XYZ", "AAA", "BBB"):
            await recommend(pool, ticker, at(days[-1], 16, 10), confidence=0.9)
        await built.step(at(day1, 9, 45))
        stops = {
            r["ticker"]: r["stop_loss_price"]
            for r in await pool.fetch("SELECT * FROM position_stop_levels WHERE active")
        }
        assert set(stops) == {"XYZ", "AAA", "BBB"}
        for ticker, stop in stops.items():
            await add_bar(pool, ticker, day1, open_=RISING[-1], close=RISING[-1])
            await add_bar(pool, ticker, day2, open_=float(stop) - 1, close=float(stop) - 1)
        await built.step(at(day2, 9, 45))
        reasons = [r["exit_reason"] for r in await pool.fetch("SELECT exit_reason FROM closed_trades")]
        assert reasons == ["stop_loss"] * 3
        halt = await pool.fetchrow("SELECT * FROM circuit_breaker_events WHERE trigger_type = 'volatility'")
        assert halt is not None and halt["resolved_at"] is None
        assert halt["cooldown_expires"] - halt["created_at"] == timedelta(minutes=60)
        assert "circuit_breaker_triggered" in built.engine.notifier.kinds()
        await seed_ticker(pool, "CCC", RISING, sector="Utilities")
        await add_bar(pool, "CCC", day1, open_=RISING[-1], close=RISING[-1])
        await add_bar(pool, "CCC", day2, open_=RISING[-1], close=RISING[-1] + 0.5)
        fresh = await recommend(pool, "CCC", at(day2, 9, 50), confidence=0.9)
        await built.step(at(day2, 10, 0))
        refused = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", fresh)
        assert refused["decision"] == "skip" and "circuit breaker volatility" in refused["skip_reason"]
    finally:
        await built.engine.stop()


async def test_the_large_trade_alert_and_the_daily_and_weekly_reports_reach_the_owner(
    market, redis_client: aioredis.Redis
) -> None:
    """Through the engine and the real notification service (PostgreSQL record, Redis rate
    limit), to a recording email channel: a closed trade over the threshold is announced, and
    after Friday's close the daily summary and the weekly digest go out, once each."""
    pool, days = market
    day1, friday = sessions(days[-1], 4)[1], sessions(days[-1], 4)[3]
    assert friday.weekday() == 4
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    email = RecordingChannel(NotificationChannel.EMAIL)
    settings = NotificationSettings(
        email_enabled=True, email_recipients=("owner@example.com",), large_trade_pnl_threshold=Decimal(10)
    )
    service = make_service(
        pool, redis_client, built.clock, {NotificationChannel.EMAIL: email}, settings=settings
    )
    await service.start()
    built.engine.notifier = service
    try:
        await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
        await built.step(at(day1, 9, 45))
        take_profit = await pool.fetchval("SELECT take_profit_price FROM position_stop_levels WHERE active")
        for day in sessions(day1, 3):
            await add_bar(pool, "XYZ", day, open_=float(take_profit) + 1, close=float(take_profit) + 2)
        await built.step(at(friday, 9, 45))
        trade = await pool.fetchrow("SELECT * FROM closed_trades WHERE ticker = 'XYZ'")
        assert trade is not None and trade["pnl"] > 10
        await built.step(at(friday, 17, 0))  # after the close: the session closes, reports are due
        await service.drain(timeout=10)
        sent = await pool.fetch("SELECT event_type, delivery_status FROM notifications ORDER BY id")
        delivered = [r["event_type"] for r in sent if r["delivery_status"] == "delivered"]
        assert "large_trade_pnl" in delivered
        assert delivered.count("daily_summary") == 1 and delivered.count("weekly_digest") == 1
        await built.step(at(friday, 17, 30))  # nothing is sent twice
        await service.drain(timeout=10)
        again = await pool.fetch(
            "SELECT event_type FROM notifications WHERE event_type LIKE '%_summary' OR event_type LIKE '%_digest'"
        )
        assert len(again) == 2
        assert any("XYZ" in m.subject for m, _ in email.received)
    finally:
        await service.stop()
        await built.engine.stop()


async def test_a_broker_rejection_reaches_the_owner_with_the_brokers_reason(
    market, redis_client: aioredis.Redis
) -> None:
    """The first tranche of an entry is refused by the broker (the account cannot pay): the
    owner hears of it once, with the broker's own reason and the two later tranches cancelled
    with it; the ticks after it tell no one again."""
    pool, days = market
    await pool.execute("UPDATE trading_engine_config SET gradual_entry_tranches = 3")
    day = sessions(days[-1], 2)[1]
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    built.engine.notifier = RecordingNotifier()
    try:
        await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
        built.clock.set(at(day, 9, 45))
        await built.engine.tick()
        await pool.execute("UPDATE broker_account SET cash = 1")  # the account cannot pay any more
        await built.broker.drain()
        await built.engine.tick()
        order = await pool.fetchrow("SELECT * FROM order_outbox WHERE broker_status = 'rejected'")
        assert order is not None and "insufficient cash" in order["broker_reason"]
        rejections = [data for kind, data in built.engine.notifier.events if kind == "order_rejected"]
        assert rejections == [
            {
                "ticker": "XYZ",
                "side": "buy",
                "quantity": order["quantity"],
                "order_reason": "entry",
                "reject_reason": order["broker_reason"],
                "client_order_id": order["client_order_id"],
                "tranches_cancelled": 2,
            }
        ]
        assert await pool.fetchval("SELECT count(*) FROM order_outbox WHERE cancelled_at IS NOT NULL") == 2
        await built.engine.tick()
        assert built.engine.notifier.kinds().count("order_rejected") == 1
    finally:
        await built.engine.stop()
