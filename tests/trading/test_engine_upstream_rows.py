"""Bad upstream rows through the real engine (issue 12, defects 2 and 3): a row that cannot be
decided as it stands is decided as a skip with its reason, or parked with a fault, in the same
pass as the good rows behind it; a buy on a price too old to trust is a skip."""

from __future__ import annotations

import random
import string

import pytest
import redis.asyncio as aioredis

from tests.trading.engine_harness import (
    FIRST_SESSION,
    RISING,
    at,
    build_stack,
    recommend,
    seed_ticker,
    sessions,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(market, redis_client: aioredis.Redis):
    pool, days = market
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    yield built, days
    await built.engine.stop()


async def _decision(pool, recommendation_id: int):
    return await pool.fetchrow(
        """SELECT decision, ticker, skip_reason, category, decision_trace FROM trading_decisions
           WHERE recommendation_id = $1""",
        recommendation_id,
    )


async def _bad_then_good(stack, bad_ticker: str) -> tuple:
    """A bad row ranked first (more confident) and a good XYZ buy behind it, decided in one tick."""
    built, days = stack
    bad = await recommend(built.pool, bad_ticker, at(days[-1], 16, 10), confidence=0.95)
    good = await recommend(built.pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
    built.clock.set(at(sessions(days[-1], 2)[1], 9, 45))
    report = await built.engine.tick()
    return report, await _decision(built.pool, bad), await _decision(built.pool, good)


def _failed_checks(decision) -> list[tuple[str, str]]:
    return [(c["check"], c["detail"]) for c in decision["decision_trace"]["checks"] if not c["passed"]]


async def test_a_ticker_longer_than_an_order_job_allows_is_skipped_and_the_next_row_decided(stack) -> None:
    """A 17-character ticker with prices used to be decided as a buy, refused by the order
    job's 16-character limit, and retried on every tick with every row behind it waiting."""
    built, _ = stack
    too_long = "ABCDEFGHIJKLMNOPQ"
    await seed_ticker(built.pool, too_long, RISING)
    report, bad, good = await _bad_then_good(stack, too_long)
    assert report.faults == [] and report.decisions == 2
    assert bad["decision"] == "skip" and "is not a ticker symbol: 1 to 16" in bad["skip_reason"]
    assert _failed_checks(bad) == [("ticker", bad["skip_reason"])] and bad["category"] == "ticker"
    assert good["decision"] == "act"
    assert await built.pool.fetchval("SELECT count(*) FROM order_outbox WHERE ticker = $1", too_long) == 0
    assert (await built.engine.tick()).faults == []  # nothing is left to retry


async def test_a_3_kb_ticker_is_recorded_as_a_skip_within_the_index_limit(stack) -> None:
    """A 3 KB ticker (unknown, so a skip) broke the decision's ticker index (about 2.7 KB at
    most): the skip itself could not be stored, and was retried forever."""
    built, _ = stack
    huge = "".join(random.Random(12).choices(string.ascii_uppercase, k=3000))  # incompressible enough
    report, bad, good = await _bad_then_good(stack, huge)
    assert report.faults == [] and report.decisions == 2
    assert bad["decision"] == "skip" and "(3000 characters) is not a ticker symbol" in bad["skip_reason"]
    assert bad["ticker"] == huge[:15] + "…" and len(bad["skip_reason"]) < 200
    assert bad["decision_trace"]["recommendation"]["ticker"] == bad["ticker"]
    assert good["decision"] == "act"


async def test_a_decision_the_database_refuses_becomes_a_skip_naming_the_refusal(stack) -> None:
    """Whatever else PostgreSQL refuses in a decision (here, a constraint on its order job) is
    no reason to try the same write again: the row is recorded as a skip saying why."""
    built, _ = stack
    await seed_ticker(built.pool, "ABC", RISING)
    await built.pool.execute("ALTER TABLE order_outbox ADD CONSTRAINT refuses_abc CHECK (ticker <> 'ABC')")
    report, bad, good = await _bad_then_good(stack, "ABC")
    assert report.faults == [] and report.decisions == 2
    assert bad["decision"] == "skip" and bad["category"] == "record"
    assert (
        "could not be recorded: CheckViolationError" in bad["skip_reason"]
        and "refuses_abc" in bad["skip_reason"]
    )
    assert good["decision"] == "act"


async def test_a_row_refused_even_as_a_skip_is_parked_with_a_fault_and_never_retried(stack) -> None:
    built, days = stack
    pool = built.pool
    bad = await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.95)
    good = await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=0.9)
    # Any decision of `bad`, even a skip, is refused.
    await pool.execute(
        f"ALTER TABLE trading_decisions ADD CONSTRAINT refuses_bad CHECK (recommendation_id <> {bad})"
    )
    built.clock.set(at(sessions(days[-1], 2)[1], 9, 45))
    report = await built.engine.tick()
    assert report.decisions == 1 and (await _decision(pool, good))["decision"] == "act"
    assert await _decision(pool, bad) is None
    [fault] = await pool.fetch("SELECT * FROM engine_faults")
    assert (
        fault["recommendation_id"] == bad and "parked" in fault["error"] and "refuses_bad" in fault["error"]
    )
    for _ in range(2):  # not taken again, by this engine or the next
        assert (await built.engine.tick()).faults == []
        await built.restart_engine()
    assert await pool.fetchval("SELECT count(*) FROM engine_faults") == 1


async def test_a_buy_on_a_two_year_old_price_is_skipped_with_the_price_age(stack) -> None:
    """The last bar of OLD is two years old: a buy on it used to go through, and the
    missing-price rule sold it moments later."""
    built, _ = stack
    await seed_ticker(built.pool, "OLD", RISING, start=FIRST_SESSION.replace(year=FIRST_SESSION.year - 2))
    report, stale, good = await _bad_then_good(stack, "OLD")
    assert report.faults == [] and report.decisions == 2
    assert stale["decision"] == "skip" and stale["category"] == "price_age"
    assert "a buy needs a price from the current session" in stale["skip_reason"]
    assert "2022-02-" in stale["skip_reason"]  # the date of the old bar, for the owner to see
    assert good["decision"] == "act"
    assert await built.pool.fetchval("SELECT count(*) FROM order_outbox WHERE ticker = 'OLD'") == 0
