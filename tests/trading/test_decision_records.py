"""Property 28 (task 13.3) through the real database: whatever arrives, the *persisted*
decision record is complete, and every order job of an act carries its trading_decision_id."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared.db import create_pool
from services.shared.schemas import TradingMode
from services.trading.core.decision import DecisionContext, MarketView, decide
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import CircuitBreakerState, PortfolioState, Recommendation
from services.trading.live import outbox
from tests.trading.engine_harness import close_pool
from tests.trading.test_decision import IN_WINDOW, NoCorrelation

pytestmark = pytest.mark.integration

# Every column the seed's task 1.1 lists for a decision record; none may be left NULL.
REQUIRED_COLUMNS = (
    "id",
    "recommendation_id",
    "decision",
    "side",
    "ticker",
    "computed_position_size",
    "computed_share_quantity",
    "risk_tier_at_decision",
    "portfolio_heat_at_decision",
    "active_pool_at_decision",
    "reserve_pool_at_decision",
    "circuit_breaker_status",
    "correlation_check_result",
    "sector_exposure_check_result",
    "earnings_proximity_flag",
    "is_micro_trade",
    "decision_trace",
    "created_at",
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(["buy", "sell", "hold", "short", ""]),
    confidence=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1)),
    mode=st.sampled_from(["paper_eligible", "live_eligible", "research", "x"]),
    price=st.one_of(st.none(), st.decimals(Decimal("0.5"), Decimal("2000"), places=2)),
    atr=st.one_of(st.none(), st.decimals(Decimal("0.01"), Decimal("50"), places=2)),
    known=st.booleans(),
    cash=st.decimals(Decimal(0), Decimal(100000), places=2),
)
def test_every_persisted_decision_is_complete_and_its_orders_trace_back(
    database_url, action, confidence, mode, price, atr, known, cash
) -> None:
    """Property 28: the stored row has every field, a skip its reason, an act its order jobs,
    each job naming the decision and adding up to its share count."""

    async def scenario() -> None:
        pool = await create_pool(database_url, max_size=2)
        try:
            rec_id = await pool.fetchval(
                """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
                   VALUES ('XYZ', $1, $2, $3, '20d', 'thesis', $4) RETURNING id""",
                action,
                confidence,
                mode,
                IN_WINDOW,
            )
            rec = Recommendation(rec_id, "XYZ", action, confidence, mode, "20d", "thesis", IN_WINDOW)
            market = MarketView(
                ticker_known=known, sector="Technology", price=price, daily_atr=atr, price_as_of=IN_WINDOW
            )
            context = DecisionContext(
                PortfolioState((), cash), CircuitBreakerState(), EngineSettings(enabled=True), NoCorrelation()
            )
            outcome = decide(rec, market, context, now=IN_WINDOW, decision_id=uuid.uuid4())
            async with pool.acquire() as connection:
                assert await outbox.record_decision(connection, outcome, TradingMode.PAPER, confidence)

            row = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", rec_id)
            assert all(row[column] is not None for column in REQUIRED_COLUMNS), dict(row)
            assert row["id"] == outcome.decision.id
            trace = (
                row["decision_trace"]
                if isinstance(row["decision_trace"], dict)
                else json.loads(row["decision_trace"])
            )
            assert trace["recommendation"]["id"] == rec_id and trace["checks"]
            jobs = await pool.fetch(
                "SELECT payload, quantity FROM order_outbox WHERE trading_decision_id = $1", row["id"]
            )
            if row["decision"] == "act":
                assert row["skip_reason"] is None and jobs
                payloads = [p if isinstance(p, dict) else json.loads(p) for p in (j["payload"] for j in jobs)]
                assert all(p["trading_decision_id"] == str(row["id"]) for p in payloads)
                assert sum(Decimal(p["quantity"]) for p in payloads) == row["computed_share_quantity"] > 0
            else:
                assert row["skip_reason"] and not jobs
        finally:
            await close_pool(pool)

    asyncio.run(scenario())
