"""The soak's invariants can fail: an account the real engine built (a buy, a losing sell, a
buy back that absorbs the washed loss, on the real servers) satisfies every one, and each
corruption of the kind issue 12 found breaks the invariant that states it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.shared.db import create_pool
from services.shared.redis_keys import QUEUE_BROKER_FILLS
from services.trading.soak import invariants
from services.trading.soak.invariants import AtRest
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

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
CASH = Decimal(10_000)
SLIPPAGE_BPS = Decimal(5)


@pytest.fixture
async def account(database_url, redis_client):
    """A day of the engine's own trading: bought, sold at a loss, bought back (a wash sale)."""
    pool = await create_pool(database_url, max_size=6)
    await enable_engine(pool, gradual_entry_tranches=1)
    days = await seed_ticker(pool, "XYZ", RISING)
    day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", day, 115.0, 116.0)
    stack = await build_stack(pool, redis_client, at(days[-1], 16, 5), cash=CASH)
    try:
        for hour, action in ((9, "buy"), (10, "sell"), (11, "buy")):
            await recommend(pool, "XYZ", at(day, hour, 50), action=action, confidence=0.9)
            await stack.step(at(day, hour, 55))
        await stack.engine.stop()
        yield pool, redis_client, AtRest(CASH, SLIPPAGE_BPS, redis_client, stack.clock.now())
    finally:
        await stack.engine.stop()
        await close_pool(pool)


def _by_name(results: list[invariants.InvariantResult]) -> dict[str, invariants.InvariantResult]:
    return {result.name: result for result in results}


async def _check(pool, rest: AtRest) -> dict[str, invariants.InvariantResult]:
    async with pool.acquire() as connection:
        return _by_name(await invariants.check_all(connection, rest))


async def test_the_engines_own_account_satisfies_every_invariant(account) -> None:
    pool, _, rest = account
    assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 3  # bought, sold, bought back
    assert await pool.fetchval("SELECT count(*) FROM tax_lots WHERE basis_adjustment IS NOT NULL") >= 1
    results = await _check(pool, rest)
    assert len(results) == len(invariants.INVARIANTS)
    failed = [r.describe() for r in results.values() if not r.passed]
    assert not failed, "\n".join(failed)
    assert all(r.checked > 0 for r in results.values())


CORRUPTIONS = [
    (
        "every recommendation decided",
        (
            "INSERT INTO recommendations (ticker, action, confidence, mode, generated_at) "
            "SELECT 'XYZ', 'buy', 0.9, 'paper_eligible', max(generated_at) FROM recommendations"
        ),
    ),
    (
        "decided at most once",
        (
            "DROP INDEX trading_decisions_recommendation_once_idx; "
            "INSERT INTO trading_decisions (id, recommendation_id, decision, side, skip_reason, ticker, "
            "risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision, reserve_pool_at_decision, "
            "circuit_breaker_status, decision_trace) SELECT gen_random_uuid(), recommendation_id, 'skip', side, "
            "'again', ticker, risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision, "
            "reserve_pool_at_decision, circuit_breaker_status, decision_trace FROM trading_decisions "
            "WHERE recommendation_id IS NOT NULL LIMIT 1"
        ),
    ),
    (
        "no order sent twice",
        (
            "INSERT INTO broker_orders (client_order_id, job_id, ticker, side, quantity, reason, status) "
            "VALUES ('pushed-by-hand', gen_random_uuid(), 'XYZ', 'buy', 1, 'entry', 'rejected')"
        ),
    ),
    ("every order accounted for", "UPDATE order_outbox SET delivered_at = NULL WHERE side = 'sell'"),
    (
        "holdings agree",
        (
            "UPDATE tax_lots SET quantity = quantity + 1, remaining_quantity = remaining_quantity + 1 "
            "WHERE status = 'open'"
        ),
    ),
    ("fills priced in the day's range", "UPDATE broker_fills SET price = price * 1.02 WHERE side = 'buy'"),
    ("entry prices in the day's range", "UPDATE position_stop_levels SET entry_price = entry_price * 1.05"),
    (
        "entry prices in the day's range",
        "UPDATE tax_lots SET cost_basis_per_share = cost_basis_per_share * 0.9 WHERE basis_adjustment IS NULL",
    ),
    (
        "reserve ledger chain unbroken",
        "INSERT INTO reserve_pool_ledger (amount, balance_after, trigger_type) VALUES (10, 11, 'manual_adjustment')",
    ),
    ("cash reconciles", "UPDATE broker_account SET cash = cash + 0.01"),
]


@pytest.mark.parametrize("broken, corruption", CORRUPTIONS, ids=[f"{b}: {c[:40]}" for b, c in CORRUPTIONS])
async def test_a_corruption_breaks_the_invariant_that_states_it(
    account, broken: str, corruption: str
) -> None:
    pool, _, rest = account
    await pool.execute(corruption)
    results = await _check(pool, rest)
    assert not results[broken].passed, results[broken].describe()
    assert results[broken].violations  # it shows the rows, not only a count


async def test_a_parked_broker_report_breaks_the_queues_invariant(account) -> None:
    pool, client, rest = account
    await client.lpush(f"{QUEUE_BROKER_FILLS}:dead", '{"client_order_id": "x"}')
    results = await _check(pool, rest)
    assert not results["queues empty at rest"].passed
    assert "broker_fills:dead" in results["queues empty at rest"].violations[0]
