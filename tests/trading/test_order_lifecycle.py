"""An order's life from decision to applied report, on real PostgreSQL and Valkey: later
tranches never buy after an exit, a cooldown, a stop or their session; sells are sized from
shares actually held; a filled order is not counted twice; a report that failed to apply is
retried (once applied, never again) and parked if it keeps failing; the volatility window
includes its first instant."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.shared.db import create_pool
from services.shared.orders import FillReport
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core import circuit_breaker
from services.trading.live.account_duties import MAX_REPORT_ATTEMPTS
from tests.trading.engine_harness import (
    RISING,
    add_bar,
    at,
    build_stack,
    close_pool,
    enable_engine,
    recommend,
    seed_ticker,
    sessions,
)

pytestmark = pytest.mark.integration

PROCESSING = QUEUE_BROKER_FILLS + ":processing"
# A real PostgreSQL failure while a report is applied (a stand-in for any defect).
FAILING_APPLY = """
CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'report refused'; END $$;
CREATE TRIGGER refuse_report BEFORE INSERT ON applied_fills FOR EACH ROW EXECUTE FUNCTION refuse_report();
"""
HEAL = "DROP TRIGGER refuse_report ON applied_fills; DROP FUNCTION refuse_report();"


@pytest.fixture
async def market(database_url: str):
    pool = await create_pool(database_url, max_size=8)
    days = await seed_ticker(pool, "XYZ", RISING)
    trading_day, later_day = sessions(days[-1], 3)[1:]
    await add_bar(pool, "XYZ", trading_day, open_=115.0, close=116.0)
    await add_bar(pool, "XYZ", later_day, open_=116.0, close=117.0)
    await enable_engine(pool, gradual_entry_tranches=3)
    yield pool, days, trading_day, later_day
    await close_pool(pool)


@pytest.fixture
async def stack(market, redis_client: aioredis.Redis):
    pool, days, trading_day, later_day = market
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    yield built, trading_day, later_day
    await built.engine.stop()


async def _tranches(pool) -> list:
    return await pool.fetch("SELECT * FROM order_outbox WHERE side = 'buy' ORDER BY tranche_index")


async def _bought(pool) -> Decimal:
    return await pool.fetchval("SELECT coalesce(sum(quantity), 0) FROM broker_fills WHERE side = 'buy'")


async def _decide_only(built, instant) -> None:
    """Decide at `instant` and die before delivering (the outbox keeps the jobs)."""
    built.clock.set(instant)
    [candidate] = await built.engine.store.undecided_recommendations(instant - timedelta(days=30), instant)
    assert (await built.engine.decide_one(candidate, instant)).acted


# -- later tranches (bug 3) ----------------------------------------------------------------


async def test_a_sell_cancels_the_unsent_tranches_and_sells_only_what_is_held(stack) -> None:
    built, day, _ = stack
    await built.step(at(day, 9, 45))
    first = (await _tranches(built.pool))[0]
    assert first["broker_status"] == "filled"
    sell = await recommend(built.pool, "XYZ", at(day, 9, 50), action="sell")
    await built.step(at(day, 9, 50))
    decision = await built.pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", sell)
    assert decision["decision"] == "act" and decision["computed_share_quantity"] == first["quantity"]
    order = await built.pool.fetchrow(
        "SELECT * FROM order_outbox WHERE trading_decision_id = $1", decision["id"]
    )
    assert order["broker_status"] == "filled", order[
        "broker_reason"
    ]  # not rejected for selling unfilled shares
    for minute in (75, 105):
        await built.step(at(day, 9) + timedelta(minutes=minute))
    later = (await _tranches(built.pool))[1:]
    assert all(t["delivered_at"] is None and "sell" in t["cancel_reason"] for t in later)
    assert await _bought(built.pool) == first["quantity"]
    assert (await built.engine.store.held()).tickers == []


async def test_a_tranche_is_not_sent_into_a_ticker_cooldown(stack) -> None:
    built, day, _ = stack
    await built.step(at(day, 9, 45))
    await built.pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker, reason,
               cooldown_expires, created_at) VALUES ('single_position', 0.08, 0.09, 'XYZ', 'test', $1, $2)""",
        at(day, 10) + timedelta(hours=24),
        at(day, 10),
    )
    assert circuit_breaker.is_ticker_in_cooldown(
        await built.engine.store.breaker_state(), "XYZ", at(day, 10, 15)
    )
    await built.step(at(day, 10, 15))
    later = (await _tranches(built.pool))[1:]
    assert all(t["delivered_at"] is None and t["cancelled_at"] is not None for t in later)
    assert await _bought(built.pool) == (await _tranches(built.pool))[0]["quantity"]


async def test_stopping_the_engine_cancels_the_later_tranches(stack) -> None:
    built, day, _ = stack
    await built.step(at(day, 9, 45))
    await built.engine.stop()
    first, *later = await _tranches(built.pool)
    assert first["broker_status"] == "filled"
    assert [t["cancel_reason"] for t in later] == ["the engine stopped before the tranche was due"] * 2
    restarted = await built.restart_engine()
    await built.step(at(day, 10, 15))
    assert await _bought(built.pool) == first["quantity"] and restarted.holds_lock


async def test_entries_from_an_earlier_session_are_cancelled_not_sent_late(stack, redis_client) -> None:
    built, day, later_day = stack
    await _decide_only(built, at(day, 15, 40))  # the first tranche never went out that day
    await built.step(at(later_day, 9, 45))
    jobs = await _tranches(built.pool)
    assert len(jobs) == 3 and all(j["delivered_at"] is None for j in jobs)
    assert all("earlier session" in j["cancel_reason"] for j in jobs)
    assert await redis_client.llen(QUEUE_BROKER_ORDERS) == 0 and await _bought(built.pool) == 0


async def _limits_changed_after_the_first_tranche(built, day, **moderate) -> asyncpg.Record:
    """Tranche 1 bought at 09:45; then the owner tightens the moderate tier's limits."""
    await built.step(at(day, 9, 45))
    first = (await _tranches(built.pool))[0]
    assert first["broker_status"] == "filled"
    await enable_engine(built.pool, risk_tier_overrides={"moderate": moderate})
    return first


async def test_a_tranche_is_refused_when_its_sector_has_no_room_left(stack) -> None:
    built, day, _ = stack
    first = await _limits_changed_after_the_first_tranche(built, day, max_sector_pct="0.02")
    await built.step(at(day, 10, 15))
    later = (await _tranches(built.pool))[1:]
    assert all(t["delivered_at"] is None for t in later)
    assert all("sector 'Technology' already holds" in t["cancel_reason"] for t in later)
    assert await _bought(built.pool) == first["quantity"]


async def test_a_tranche_is_refused_when_it_would_take_heat_over_the_cap(stack) -> None:
    built, day, _ = stack
    first = await _limits_changed_after_the_first_tranche(built, day, max_portfolio_heat="0.001")
    await built.step(at(day, 10, 15))
    later = (await _tranches(built.pool))[1:]
    assert all(t["delivered_at"] is None and "portfolio heat would be" in t["cancel_reason"] for t in later)
    assert await _bought(built.pool) == first["quantity"]


async def test_a_tranche_over_the_position_limit_is_cut_to_fit(stack) -> None:
    built, day, _ = stack
    # $400 of a ~$10,000 book: the first tranche leaves room for one more share, not two.
    first = await _limits_changed_after_the_first_tranche(built, day, max_position_pct="0.04")
    price = await built.pool.fetchval("SELECT price FROM broker_fills WHERE side = 'buy'")
    assert first["quantity"] == 2 and 400 - 2 * price < 2 * price
    await built.step(at(day, 10, 15))
    second = (await _tranches(built.pool))[1]
    assert second["broker_status"] == "filled" and second["quantity"] == 1
    assert Decimal(second["payload"]["quantity"]) == 1
    await built.step(at(day, 10, 45))
    third = (await _tranches(built.pool))[2]
    assert third["delivered_at"] is None and "buys no whole share" in third["cancel_reason"]
    assert await _bought(built.pool) == 3


async def test_a_later_tranche_due_after_the_window_is_not_sent_next_session(stack) -> None:
    built, day, later_day = stack
    await built.step(at(day, 15, 40))  # tranches 2 and 3 fall due at 16:10 and 16:40
    await built.step(at(later_day, 9, 45))
    first, *later = await _tranches(built.pool)
    assert first["broker_status"] == "filled"
    assert all(t["delivered_at"] is None and t["cancelled_at"] is not None for t in later)
    assert await _bought(built.pool) == first["quantity"]


async def test_no_entry_is_sent_outside_the_trading_window(stack, redis_client) -> None:
    built, day, _ = stack
    await _decide_only(built, at(day, 15, 40))
    await built.step(at(day, 15, 50))  # the market is open, the trading window is not
    jobs = await _tranches(built.pool)
    assert all(j["delivered_at"] is None and "window closed" in j["cancel_reason"] for j in jobs)
    assert await redis_client.llen(QUEUE_BROKER_ORDERS) == 0


async def test_an_exit_goes_out_at_the_open_before_the_trading_window(stack) -> None:
    built, day, later_day = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    await built.step(at(day, 9, 45))
    stop = await built.pool.fetchval("SELECT stop_loss_price FROM position_stop_levels WHERE active")
    crash_day = sessions(later_day, 2)[1]
    await add_bar(built.pool, "XYZ", crash_day, open_=float(stop) - 3, close=float(stop) - 4)
    await built.step(at(crash_day, 9, 35))
    trade = await built.pool.fetchrow("SELECT * FROM closed_trades")
    assert trade is not None and trade["exit_reason"] == "stop_loss"


# -- pending orders (bugs 4 and 5) ---------------------------------------------------------


async def test_a_fill_not_yet_applied_is_not_counted_twice(stack) -> None:
    built, day, _ = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    built.clock.set(at(day, 9, 45))
    await built.engine.tick()
    await built.broker.drain()  # filled at the broker; the engine has not applied the report
    bought = await _bought(built.pool)
    assert bought > 0
    quotes = await built.engine.market.prices.quotes(["XYZ"], built.clock.now())
    account = await built.engine.store.held()
    portfolio = account.portfolio(account.positions(quotes), quotes)
    assert portfolio.position("XYZ").quantity == bought
    assert portfolio.cash == await built.pool.fetchval("SELECT cash FROM broker_account")


async def test_unfilled_buys_are_not_sellable(stack) -> None:
    built, day, _ = stack
    await built.step(at(day, 9, 45))
    quotes = await built.engine.market.prices.quotes(["XYZ"], built.clock.now())
    account = await built.engine.store.held()
    held = account.positions(quotes)
    decided = account.portfolio(held, quotes)
    sellable = account.portfolio(held, quotes, pending_buys=False)
    first, *later = await _tranches(built.pool)
    assert decided.position("XYZ").quantity == sum(t["quantity"] for t in (first, *later))
    assert sellable.position("XYZ").quantity == first["quantity"]


async def test_a_sell_is_sized_from_one_snapshot_of_holdings_and_pending_orders(stack, redis_client) -> None:
    """Issue 12, defect 7: the broker fills a pending sale while a second sell signal is being
    sized. Read apart, the shares looked held (read before the fill) and no longer pending
    (read after it), and were sold twice; the broker rejected the second sale and the signal
    was lost. Read in one snapshot, the second sale sees nothing left to sell."""
    built, day, _ = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    await built.step(at(day, 9, 45))
    await _decide_at(built, at(day, 9, 50), "sell")  # decided and sent, not filled yet
    second = await recommend(built.pool, "XYZ", at(day, 9, 51), action="sell")
    built.clock.set(at(day, 9, 51))
    blocker = await built.pool.acquire()
    try:
        transaction = blocker.transaction()
        await transaction.start()
        # Reads of the outbox wait behind this lock, after the held shares were read.
        await blocker.execute("LOCK TABLE order_outbox IN ACCESS EXCLUSIVE MODE")
        deciding = asyncio.create_task(built.engine.decide_pending())
        for _ in range(100):
            if await built.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ):
                break
            await asyncio.sleep(0.02)
        await built.broker.drain()  # the first sale fills meanwhile
        await transaction.commit()
        await deciding
    finally:
        await built.pool.release(blocker)
    decision = await built.pool.fetchrow(
        "SELECT * FROM trading_decisions WHERE recommendation_id = $1", second
    )
    assert decision["decision"] == "skip", decision["skip_reason"]
    await built.broker.drain()
    assert await built.pool.fetchval("SELECT count(*) FROM broker_orders WHERE status = 'rejected'") == 0


# -- broker reports (bug 2) ----------------------------------------------------------------


async def test_a_report_that_failed_to_apply_is_retried_next_tick_and_applied_once(
    stack, redis_client
) -> None:
    built, day, _ = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    built.clock.set(at(day, 9, 45))
    await built.engine.tick()
    await built.broker.drain()
    outcome = (await redis_client.lindex(QUEUE_BROKER_FILLS, 0)).decode()
    await built.pool.execute(FAILING_APPLY)
    failed = await built.engine.tick()
    assert any("report refused" in f for f in failed.faults)
    assert await redis_client.llen(PROCESSING) + await redis_client.llen(QUEUE_BROKER_FILLS) == 1
    await built.pool.execute(HEAL)
    built.clock.set(at(day, 9, 46))
    applied = await built.engine.tick()
    assert applied.reports_applied == 1 and applied.faults == []
    assert await built.pool.fetchval("SELECT sum(remaining_quantity) FROM tax_lots") == await _bought(
        built.pool
    )
    assert await redis_client.llen(PROCESSING) == 0
    await built.broker.fills.push(outcome)
    await built.engine.tick()  # the same outcome again (a broker re-sending it) changes nothing
    assert await built.pool.fetchval("SELECT count(*) FROM applied_fills") == 1
    assert await built.pool.fetchval("SELECT count(*) FROM tax_lots") == 1


async def test_a_report_that_keeps_failing_is_parked_without_blocking_the_others(stack, redis_client) -> None:
    built, day, _ = stack
    await built.pool.execute(
        FAILING_APPLY.replace("BEGIN RAISE", "BEGIN IF NEW.ticker = 'BAD' THEN RAISE").replace(
            "refused'; END", "refused'; END IF; RETURN NEW; END"
        )
    )
    bad = FillReport(
        client_order_id="bad-1",
        trading_decision_id=uuid.uuid4(),
        broker_order_id=1,
        ticker="BAD",
        side=OrderSide.BUY,
        reason=OrderReason.ENTRY,
        status="rejected",
        quantity=Decimal(1),
        reject_reason="test",
        at=at(day, 9, 40),
    )
    good = bad.model_copy(update={"client_order_id": "good-1", "ticker": "XYZ"})
    await built.engine.fills.push(bad.model_dump_json())
    await built.engine.fills.push(good.model_dump_json())
    built.clock.set(at(day, 9, 40))
    for attempt in range(1, MAX_REPORT_ATTEMPTS + 1):
        report = await built.engine.tick()
        assert any("bad-1" in f for f in report.faults)
        if attempt == 1:
            assert report.reports_applied == 1  # the good one went through at once
    parked = [json.loads(m) for m in await redis_client.lrange(QUEUE_BROKER_FILLS + ":dead", 0, -1)]
    assert [p["client_order_id"] for p in parked] == ["bad-1"]
    assert await redis_client.llen(PROCESSING) == 0 and await redis_client.llen(QUEUE_BROKER_FILLS) == 0
    assert await built.pool.fetchval("SELECT array_agg(client_order_id) FROM applied_fills") == ["good-1"]
    assert (
        await built.pool.fetchval("SELECT count(*) FROM engine_faults WHERE component = 'fills'")
        >= MAX_REPORT_ATTEMPTS
    )
    assert (await built.engine.tick()).faults == []


# -- reports in the engine's own order (issue 12, defect 1) -----------------------------------


async def _late_reports(built, redis_client, steps) -> None:
    """Run each step (decide and send, broker fills) holding its report back, then deliver
    them all at once, in order: the broker is ahead of the engine's books by several fills."""
    late = []
    for step in steps:
        await step()
        await built.broker.drain()
        while (message := await redis_client.rpop(QUEUE_BROKER_FILLS)) is not None:
            late.append(message)
    for message in late:
        await built.engine.fills.push(message)


async def _decide_at(built, instant, action: str | None):
    """Decide what is waiting at `instant`, after a new recommendation to `action` if any."""
    built.clock.set(instant)
    if action is not None:
        await recommend(built.pool, "XYZ", instant, action=action)
    await built.engine.decide_pending()


async def _fill(pool, side: str, index: int = 0) -> asyncpg.Record:
    return (await pool.fetch("SELECT * FROM broker_fills WHERE side = $1 ORDER BY id", side))[index]


async def test_a_sell_and_a_new_buy_reported_late_open_a_fresh_position(stack, redis_client) -> None:
    built, day, _ = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    await built.step(at(day, 9, 45))
    # The first position's stop has trailed up: the next position must not inherit it.
    await built.pool.execute("""UPDATE position_stop_levels SET trailing_stop_active = true,
                                    stop_loss_price = take_profit_price - 1 WHERE active""")
    await _late_reports(
        built,
        redis_client,
        [lambda: _decide_at(built, at(day, 9, 50), "sell"), lambda: _decide_at(built, at(day, 9, 55), "buy")],
    )
    built.clock.set(at(day, 10))
    assert (await built.engine.tick()).faults == []

    first_buy, sell, second_buy = (
        await _fill(built.pool, "buy"),
        await _fill(built.pool, "sell"),
        await _fill(built.pool, "buy", 1),
    )
    [trade] = await built.pool.fetch("SELECT * FROM closed_trades")
    assert (trade["entry_price"], trade["exit_price"]) == (first_buy["price"], sell["price"])
    assert trade["exit_reason"] == "signal"  # the sell recommendation's, not "entry"
    [levels] = await built.pool.fetch("SELECT * FROM position_stop_levels WHERE active")
    rebuy_order = await built.pool.fetchrow(
        "SELECT * FROM broker_orders WHERE id = $1", second_buy["order_id"]
    )
    assert levels["entry_price"] == second_buy["price"]
    assert not levels["trailing_stop_active"] and levels["stop_loss_price"] < second_buy["price"]
    assert levels["opened_by_decision"] == rebuy_order["trading_decision_id"]
    # The sale at a loss, bought back at once, is a wash sale: the replacement lot carries
    # the disallowed loss per share in its basis.
    lots = await built.pool.fetch("SELECT * FROM tax_lots WHERE status = 'open'")
    loss_per_share = first_buy["price"] - sell["price"]
    assert [(lot["remaining_quantity"], lot["cost_basis_per_share"]) for lot in lots] == [
        (second_buy["quantity"], second_buy["price"] + loss_per_share)
    ]
    assert await redis_client.llen(QUEUE_BROKER_FILLS + ":dead") == 0


async def test_a_tranche_and_a_sell_reported_late_close_the_position_at_its_average_entry(
    stack, redis_client
) -> None:
    built, day, _ = stack
    await built.step(at(day, 9, 45))  # the first of three tranches, applied

    async def second_tranche() -> None:
        built.clock.set(at(day, 10, 16))
        await built.engine.tick()

    await _late_reports(
        built, redis_client, [second_tranche, lambda: _decide_at(built, at(day, 10, 20), "sell")]
    )
    built.clock.set(at(day, 10, 25))
    assert (await built.engine.tick()).faults == []

    first, second, sell = (
        await _fill(built.pool, "buy"),
        await _fill(built.pool, "buy", 1),
        await _fill(built.pool, "sell"),
    )
    assert sell["quantity"] == first["quantity"] + second["quantity"]
    [trade] = await built.pool.fetch("SELECT * FROM closed_trades")
    average = (first["price"] * first["quantity"] + second["price"] * second["quantity"]) / sell["quantity"]
    assert trade["quantity"] == sell["quantity"]
    assert abs(trade["entry_price"] - average) < Decimal("0.0001")
    assert await built.pool.fetchval("SELECT count(*) FROM position_stop_levels WHERE active") == 0
    assert await built.pool.fetchval("SELECT count(*) FROM tax_lots WHERE status = 'open'") == 0
    assert await redis_client.llen(QUEUE_BROKER_FILLS + ":dead") == 0


async def test_a_report_that_fails_holds_back_the_later_reports_of_its_ticker_only(
    stack, redis_client
) -> None:
    built, day, _ = stack
    await enable_engine(built.pool, gradual_entry_tranches=1)
    await _late_reports(
        built,
        redis_client,
        [lambda: _decide_at(built, at(day, 9, 45), None), lambda: _decide_at(built, at(day, 9, 50), "sell")],
    )
    buy, sell = await _fill(built.pool, "buy"), await _fill(built.pool, "sell")
    await built.pool.execute(
        FAILING_APPLY.replace(
            "BEGIN RAISE", f"BEGIN IF NEW.client_order_id = '{buy['client_order_id']}' THEN RAISE"
        ).replace("refused'; END", "refused'; END IF; RETURN NEW; END")
    )
    other = FillReport(
        client_order_id="other-1",
        trading_decision_id=uuid.uuid4(),
        broker_order_id=1,
        ticker="OTHER",
        side=OrderSide.BUY,
        reason=OrderReason.ENTRY,
        status="rejected",
        quantity=Decimal(1),
        reject_reason="test",
        at=at(day, 9, 51),
    )
    await built.engine.fills.push(other.model_dump_json())
    built.clock.set(at(day, 9, 55))
    for _ in range(MAX_REPORT_ATTEMPTS - 1):
        report = await built.engine.tick()
        assert any(buy["client_order_id"] in f for f in report.faults)
    faults = await built.pool.fetchval(
        "SELECT string_agg(error, ' ') FROM engine_faults WHERE component = 'fills'"
    )
    assert sell["client_order_id"] not in faults  # never tried before the buy it sells
    assert await built.pool.fetchval("SELECT array_agg(client_order_id) FROM applied_fills") == ["other-1"]
    await built.pool.execute(HEAL)
    assert (await built.engine.tick()).reports_applied == 2
    [trade] = await built.pool.fetch("SELECT * FROM closed_trades")
    assert (trade["entry_price"], trade["exit_price"]) == (buy["price"], sell["price"])


async def test_a_fill_is_in_the_books_as_soon_as_its_report_arrives(market, redis_client) -> None:
    """Between full ticks (five minutes apart here) a new recommendation is decided on its
    NOTIFY, the broker fills it, and the report is applied at once: the position has its lot
    and its stop within moments, not at the next tick."""
    pool, _, day, _ = market
    await enable_engine(pool, gradual_entry_tranches=1, polling_interval_seconds=300)
    built = await build_stack(pool, redis_client, at(day, 9, 45))
    stop = asyncio.Event()
    loops = [asyncio.create_task(built.engine.run(stop)), asyncio.create_task(built.broker.run(stop))]
    try:
        await asyncio.sleep(0.5)  # the first full tick is behind us
        await recommend(pool, "XYZ", at(day, 9, 45))
        for _ in range(100):
            if await pool.fetchval("SELECT count(*) FROM position_stop_levels WHERE active"):
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval("SELECT count(*) FROM position_stop_levels WHERE active") == 1
        assert await pool.fetchval("SELECT sum(remaining_quantity) FROM tax_lots") == await _bought(pool)
    finally:
        stop.set()
        await asyncio.gather(*loops)
        await built.engine.stop()


# -- volatility window (bug 6) -------------------------------------------------------------


async def test_a_stop_out_exactly_thirty_minutes_ago_counts_for_the_volatility_breaker(stack) -> None:
    built, day, _ = stack
    now = at(day, 11)
    for minutes_ago in (30, 10, 0):
        exit_at = now - timedelta(minutes=minutes_ago)
        await built.pool.execute(
            """INSERT INTO closed_trades (ticker, quantity, entry_price, exit_price, fees, pnl, entry_at, exit_at,
                   exit_reason) VALUES ('XYZ', 1, 100, 95, 0, -5, $1, $2, 'stop_loss')""",
            exit_at - timedelta(hours=1),
            exit_at,
        )
    stop_outs = await built.engine.store.stop_outs_since(now - timedelta(minutes=30))
    assert len(stop_outs) == 3
    check = circuit_breaker.check_volatility(await built.engine.store.breaker_state(), stop_outs, now)
    assert check.event is not None
