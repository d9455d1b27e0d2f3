"""The decision pipeline: every recommendation becomes act (with orders) or skip (with a
reason), never an exception, and the record carries the whole reasoning."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import OrderSide, TradingDecisionType
from services.trading.core.decision import DecisionContext, MarketView, decide
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import CircuitBreakerState, OpenPosition, PortfolioState, Recommendation

# Tuesday 2024-03-05, 11:00 New York: inside the trading window.
IN_WINDOW = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
AFTER_CLOSE = datetime(2024, 3, 5, 22, 0, tzinfo=UTC)
ON = EngineSettings(enabled=True)
# The price is the session's open, from a daily bar: current all session.
SESSION_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
MARKET = MarketView(
    ticker_known=True,
    sector="Technology",
    price=Decimal("50"),
    daily_atr=Decimal("1.5"),
    price_as_of=SESSION_OPEN,
)


class NoCorrelation:
    def get_portfolio_correlation(self, candidate, positions) -> float:
        return 0.0


def _rec(action="buy", confidence=0.8, ticker="XYZ", mode="paper_eligible", window="20d") -> Recommendation:
    return Recommendation(7, ticker, action, confidence, mode, window, "test thesis", IN_WINDOW)


def _ctx(cash="10000", positions=(), settings_=ON, breakers=CircuitBreakerState()) -> DecisionContext:
    return DecisionContext(
        PortfolioState(tuple(positions), Decimal(cash)), breakers, settings_, NoCorrelation()
    )


def _decide(rec, market=MARKET, ctx=None, now=IN_WINDOW):
    return decide(rec, market, ctx or _ctx(), now=now, decision_id=uuid.uuid4())


def test_a_confident_buy_acts_with_orders_stops_and_trace() -> None:
    outcome = _decide(_rec())
    decision = outcome.decision
    assert decision.decision is TradingDecisionType.ACT and decision.skip_reason is None
    assert outcome.orders and all(o.side is OrderSide.BUY for o in outcome.orders)
    assert sum(o.quantity for o in outcome.orders) == decision.computed_share_quantity > 0
    # Stop 2.0x ATR below the price (moderate tier), take-profit twice as far above.
    assert outcome.stops.stop_loss_price == Decimal("47.0") and outcome.stops.take_profit_price == Decimal(
        "56.0"
    )
    checks = [step["check"] for step in decision.decision_trace["checks"]]
    assert checks[0] == "input" and "sizing" in checks and "stops" in checks
    assert decision.decision_trace["sizing"]["adjustments"]


def test_fractional_shares_buy_in_fractional_tranches() -> None:
    """With fractional shares on, a buy is sized in 0.0001-share steps and still split into
    tranches (it used to fail on the whole-share split and become a skip)."""
    fractional = replace(ON, sizing=replace(ON.sizing, fractional_shares=True))
    outcome = _decide(_rec(), market=replace(MARKET, price=Decimal("333.33")), ctx=_ctx(settings_=fractional))
    decision = outcome.decision
    assert decision.decision is TradingDecisionType.ACT, decision.skip_reason
    assert decision.computed_share_quantity != decision.computed_share_quantity.to_integral_value()
    assert len(outcome.orders) == ON.gradual.tranche_count
    assert sum(o.quantity for o in outcome.orders) == decision.computed_share_quantity


@pytest.mark.parametrize(
    ("rec", "market", "reason"),
    [
        (_rec(confidence=math.nan), MARKET, "confidence nan"),
        (_rec(confidence=1.7), MARKET, "confidence 1.7"),
        (_rec(action="hold"), MARKET, "neither buy nor sell"),
        (_rec(mode="research"), MARKET, "not paper_eligible"),
        (_rec(), MarketView(ticker_known=False), "unknown"),
        (_rec(), replace(MARKET, price=None), "no market price"),
        (_rec(), replace(MARKET, daily_atr=None), "fewer than 15 daily bars"),
        (_rec(confidence=0.5), MARKET, "confidence"),
        (_rec(action="sell"), MARKET, "not held"),
    ],
)
def test_bad_or_unactionable_input_is_a_skip_with_a_reason(rec, market, reason) -> None:
    outcome = _decide(rec, market)
    assert outcome.decision.decision is TradingDecisionType.SKIP
    assert reason in outcome.decision.skip_reason
    assert outcome.orders == ()


class UnreadableAtr:
    """A market view whose ATR must not be read: it raises if it is."""

    ticker_known, sector, price, intraday_atr = True, "Technology", Decimal("50"), None
    sessions_until_earnings, high_severity_event = None, False
    price_as_of, price_interval = SESSION_OPEN, "1d"

    @property
    def daily_atr(self):
        raise AssertionError("the ATR was read")


def test_a_buy_below_the_tier_minimum_is_refused_before_its_stop_is_computed() -> None:
    """The cheap gate first: a buy the tier would size at zero never reads the ATR, which
    costs the backtester most of a view (its view computes the ATR only when read)."""
    tier = ON.tier
    below = float(tier.min_confidence) - 0.01
    outcome = _decide(_rec(confidence=below), market=UnreadableAtr())
    failed = [s for s in outcome.decision.decision_trace["checks"] if not s["passed"]]
    assert [s["check"] for s in failed] == ["min_confidence"]
    assert f"below the {tier.name} tier's minimum {tier.min_confidence}" in outcome.decision.skip_reason
    at_minimum = _decide(_rec(confidence=float(tier.min_confidence)))
    assert at_minimum.acted  # the minimum itself is enough


@pytest.mark.parametrize(
    "rec", [_rec(), _rec(confidence=0.5), _rec(action="sell"), _rec(confidence=math.nan)]
)
def test_the_verdict_agrees_with_the_record_built_now_or_later(rec) -> None:
    """The backtester reads the verdict and never the record (`lazy_record`); the engine
    persists the record. Both must tell the same story, and a late record is the same record."""
    decision_id = uuid.uuid4()
    eager = decide(rec, MARKET, _ctx(), now=IN_WINDOW, decision_id=decision_id)
    lazy = decide(rec, MARKET, _ctx(), now=IN_WINDOW, decision_id=decision_id, lazy_record=True)
    for outcome in (eager, lazy):
        record = outcome.decision
        failed = [s["check"] for s in record.decision_trace["checks"] if not s["passed"]]
        assert outcome.acted is (record.decision is TradingDecisionType.ACT)
        assert outcome.skip_reason == record.skip_reason
        assert outcome.failed_check == (failed[0] if failed else None)
        assert outcome.share_quantity == record.computed_share_quantity
    assert lazy.decision == eager.decision and lazy.orders == eager.orders and lazy.stops == eager.stops


def test_a_recommendation_expires_with_its_first_trading_window() -> None:
    friday_close = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)  # Friday 16:00 New York
    rec = replace(_rec(), generated_at=friday_close)
    monday_morning = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
    assert _decide(rec, now=monday_morning).acted
    tuesday_morning = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    assert "stale" in _decide(rec, now=tuesday_morning).decision.skip_reason
    during_window = replace(_rec(), generated_at=IN_WINDOW)
    assert "stale" in _decide(during_window, now=AFTER_CLOSE).decision.skip_reason


def test_disabled_paused_and_closed_market_skip() -> None:
    assert "disabled" in _decide(_rec(), ctx=_ctx(settings_=EngineSettings())).decision.skip_reason
    assert "paused" in _decide(_rec(), ctx=_ctx(settings_=replace(ON, paused=True))).decision.skip_reason
    evening_rec = replace(_rec(), generated_at=AFTER_CLOSE)
    closing_price = replace(MARKET, price_as_of=datetime(2024, 3, 5, 21, 0, tzinfo=UTC))  # the day's close
    assert (
        "outside the trading window"
        in _decide(evening_rec, closing_price, now=AFTER_CLOSE).decision.skip_reason
    )


def test_a_sell_closes_the_whole_position_even_under_a_breaker() -> None:
    held = OpenPosition(
        "XYZ", Decimal(12), Decimal(45), Decimal(50), "Technology", Decimal(42), Decimal(51), Decimal("0.8")
    )
    tripped = CircuitBreakerState(active=True, triggered_at=IN_WINDOW, cooldown_expires=None)
    outcome = _decide(_rec(action="sell"), ctx=_ctx(positions=[held], breakers=tripped))
    assert outcome.acted
    assert [(o.side, o.quantity) for o in outcome.orders] == [(OrderSide.SELL, Decimal(12))]


def test_an_active_breaker_blocks_buys() -> None:
    tripped = CircuitBreakerState(active=True, triggered_at=IN_WINDOW, cooldown_expires=None)
    outcome = _decide(_rec(), ctx=_ctx(breakers=tripped))
    assert not outcome.acted and "circuit breaker" in outcome.decision.skip_reason
    assert outcome.decision.circuit_breaker_status == "active"


class HighCorrelation:
    def get_portfolio_correlation(self, candidate, positions) -> float:
        return 0.93


def test_a_buy_refused_for_correlation_records_the_correlation_check() -> None:
    """Issue 15: the refusal's correlation check is in the record, not an empty object."""
    held = OpenPosition(
        "ABC", Decimal(10), Decimal(50), Decimal(50), "Energy", Decimal(45), Decimal(60), Decimal("0.8")
    )
    ctx = DecisionContext(
        PortfolioState((held,), Decimal("10000")), CircuitBreakerState(), ON, HighCorrelation()
    )
    outcome = _decide(_rec(), ctx=ctx)
    assert not outcome.acted and "correlation 0.9300" in outcome.decision.skip_reason
    check = outcome.decision.correlation_check_result
    assert check["factor"] == 0 and check["reason"] == outcome.decision.skip_reason


def test_intraday_signals_take_the_micro_path_when_enabled() -> None:
    micro_on = replace(ON, micro=replace(ON.micro, enabled=True))
    market = replace(MARKET, intraday_atr=Decimal("0.4"))
    outcome = _decide(_rec(window="intraday"), market, _ctx(settings_=micro_on))
    assert outcome.acted and outcome.decision.is_micro_trade
    assert outcome.stops.stop_loss_price == Decimal("49.6")  # 1.0x intraday ATR
    assert outcome.decision.computed_position_size <= Decimal("10000") * Decimal("0.03")


confidences = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1))
prices = st.one_of(st.none(), st.decimals(Decimal("0.5"), Decimal("2000"), places=2))


@settings(max_examples=200, deadline=None)
@given(
    action=st.sampled_from(["buy", "sell", "hold", "short", ""]),
    confidence=confidences,
    mode=st.sampled_from(["paper_eligible", "live_eligible", "research", "x"]),
    price=prices,
    atr=st.one_of(st.none(), st.decimals(Decimal("0.01"), Decimal("50"), places=2)),
    known=st.booleans(),
    cash=st.decimals(Decimal(0), Decimal(100000), places=2),
)
def test_every_decision_record_is_complete(action, confidence, mode, price, atr, known, cash) -> None:
    """Property 28 (task 13.3): whatever arrives, the decision record is complete: act has
    orders whose quantities add up to the decision's, skip has a reason and no orders, and the
    trace holds the recommendation and every check made."""
    rec = _rec(action=action, confidence=confidence, mode=mode)
    market = MarketView(
        ticker_known=known, sector="Technology", price=price, daily_atr=atr, price_as_of=SESSION_OPEN
    )
    outcome = _decide(rec, market, _ctx(cash=str(cash)))
    d = outcome.decision
    assert d.recommendation_id == rec.id and d.ticker == rec.ticker and d.created_at == IN_WINDOW
    assert d.risk_tier_at_decision == ON.risk_tier and d.circuit_breaker_status in ("active", "inactive")
    assert d.decision_trace["recommendation"]["id"] == rec.id and d.decision_trace["checks"]
    if d.decision is TradingDecisionType.ACT:
        assert d.skip_reason is None and outcome.orders
        assert sum(o.quantity for o in outcome.orders) == d.computed_share_quantity > 0
        assert all(step["passed"] for step in d.decision_trace["checks"])
    else:
        assert d.skip_reason and outcome.orders == ()
        assert d.decision_trace["checks"][-1]["passed"] is False
        assert d.decision_trace["checks"][-1]["detail"] == d.skip_reason
