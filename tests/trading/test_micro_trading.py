"""Micro-trading rules (seed tasks 17.1-17.4, docs/contracts.md section 5)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import OrderReason, RiskTierName, TrendWindow
from services.trading.core.decision import DecisionContext, MarketView, decide
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.micro_trading import (
    MicroTradeRequest,
    MicroTradingSettings,
    evaluate_micro_trade,
    positions_to_auto_close,
)
from services.trading.core.models import (
    RISK_TIER_DEFAULTS,
    CircuitBreakerState,
    OpenPosition,
    PortfolioState,
    Recommendation,
)
from services.trading.core.position_sizer import PositionSizer, SizingSettings

D = Decimal
IN_WINDOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # Tuesday 10:00 New York
BEFORE_WINDOW = datetime(2025, 3, 4, 14, 40, tzinfo=UTC)  # 09:40, market open, window not
SATURDAY = datetime(2025, 3, 8, 16, 0, tzinfo=UTC)
ON = MicroTradingSettings(enabled=True)
NO_BREAKERS = CircuitBreakerState()


class FixedCorrelation:
    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        return self.value if positions else 0.0


def position(
    ticker,
    sector,
    qty="1",
    entry="10",
    current=None,
    stop=None,
    confidence="0.7",
    micro=False,
    opened_at=None,
) -> OpenPosition:
    return OpenPosition(
        ticker,
        D(qty),
        D(entry),
        D(current or entry),
        sector,
        D(stop or entry),
        D(entry) * 2,
        D(confidence),
        micro,
        opened_at,
    )


def calm_portfolio(cash="10000") -> PortfolioState:
    return PortfolioState(
        (position("AAA", "Tech"), position("BBB", "Health"), position("CCC", "Energy")), D(cash)
    )


def request(price="50", atr="0.5", confidence="0.8", window=TrendWindow.INTRADAY, **kw) -> MicroTradeRequest:
    return MicroTradeRequest("NEW", kw.pop("sector", "Banks"), D(confidence), D(price), D(atr), window, **kw)


def evaluate(
    req,
    portfolio=None,
    *,
    tier=RiskTierName.MODERATE,
    correlation=0.0,
    breakers=NO_BREAKERS,
    today=0,
    now=IN_WINDOW,
    micro=ON,
):
    return evaluate_micro_trade(
        req,
        portfolio=portfolio or calm_portfolio(),
        tier=RISK_TIER_DEFAULTS[tier],
        sizer=PositionSizer(FixedCorrelation(correlation)),
        breakers=breakers,
        micro_trades_today=today,
        now=now,
        settings=micro,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.integers(500, 100_000),  # cash
    st.decimals("5", "500", places=2),  # price
    st.decimals("0.01", "0.2", places=3),  # ATR as a fraction of price
    st.decimals("0.55", "1", places=2),  # confidence
    st.sampled_from(list(RiskTierName)),
    st.decimals("0.005", "0.05", places=3),  # micro cap
)
def test_property_31_micro_trade_size_and_stops(cash, price, atr_frac, confidence, tier, cap):
    """Property 31: a micro-trade is worth at most allocation_cap_pct of the Active Pool; its
    stop is entry - 1.0 x intraday ATR and take-profit entry + 1.5 x the stop distance."""
    atr = (price * atr_frac).quantize(D("0.0001"))
    micro = replace(ON, allocation_cap_pct=cap)
    portfolio = calm_portfolio(str(cash))
    decision = evaluate(request(str(price), str(atr), str(confidence)), portfolio, tier=tier, micro=micro)
    if not decision.approved:
        assert decision.reason
        return
    assert decision.size.dollar_amount == decision.quantity * price
    assert decision.size.dollar_amount <= cap * portfolio.active_pool
    assert decision.stops.stop_loss_price == price - atr
    assert decision.stops.take_profit_price == price + D("1.5") * atr


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 15), st.integers(0, 30))
def test_property_31_daily_micro_trade_limit(max_daily, attempts):
    """Property 31: opening micro-trades one after another, the day's count never exceeds
    max_daily, and every attempt at the limit is refused with the reason."""
    micro = replace(ON, max_daily=max_daily)
    opened = 0
    for _ in range(attempts):
        decision = evaluate(request(), today=opened, micro=micro)
        if opened >= max_daily:
            assert not decision.approved and "daily limit" in decision.reason
        if decision.approved:
            opened += 1
        assert opened <= max_daily
    assert opened == min(attempts, max_daily)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.booleans(), st.integers(1, 50)), max_size=12))
def test_property_32_micro_positions_close_after_max_hold(holds):
    """Property 32: a micro position held 120 minutes or more is closed in full at market;
    younger micro positions and all standard positions are left alone."""
    positions = [
        position(
            f"T{i}",
            "Tech",
            qty=str(qty),
            current="12",
            micro=micro,
            opened_at=IN_WINDOW - timedelta(minutes=m),
        )
        for i, (m, micro, qty) in enumerate(holds)
    ]
    exits = {e.ticker: e for e in positions_to_auto_close(positions, IN_WINDOW)}
    for p, (minutes, micro, _) in zip(positions, holds):
        if micro and minutes >= 120:
            e = exits[p.ticker]
            assert (e.quantity, e.reference_price, e.order_reason) == (
                p.quantity,
                p.current_price,
                OrderReason.MICRO_EXIT,
            )
            assert e.reason
        else:
            assert p.ticker not in exits


# Each violation of a shared rule, built on the calm scenario that is otherwise approved.
VIOLATIONS = {
    "outside_window": dict(now=BEFORE_WINDOW),
    "weekend": dict(now=SATURDAY),
    "breaker_active": dict(
        breakers=CircuitBreakerState(
            active=True, triggered_at=IN_WINDOW, cooldown_expires=IN_WINDOW + timedelta(hours=1)
        )
    ),
    "ticker_cooldown": dict(
        breakers=CircuitBreakerState(ticker_cooldowns={"NEW": IN_WINDOW + timedelta(hours=3)})
    ),
    "correlation": dict(correlation=0.85),
    "confidence": dict(req=request(confidence="0.6")),
    "earnings": dict(req=request(sessions_until_earnings=1)),
    "sector_full": dict(
        portfolio=PortfolioState((position("BNK", "Banks", qty="400", entry="10"),), D(6000))
    ),
    "heat": dict(
        portfolio=PortfolioState((position("HOT", "Tech", qty="100", entry="10", stop="1"),), D(8000))
    ),
    "declining": dict(
        portfolio=PortfolioState(
            (
                position("A", "Tech", current="9"),
                position("B", "Health", current="9"),
                position("C", "Energy"),
            ),
            D(10000),
        )
    ),
    "max_open": dict(
        portfolio=PortfolioState(tuple(position(f"P{i}", f"S{i}") for i in range(10)), D(10000))
    ),
    "active_pool_minimum": dict(portfolio=PortfolioState((), D(90))),
    "disabled": dict(micro=MicroTradingSettings(enabled=False)),
    "not_intraday": dict(req=request(window=TrendWindow.FIVE_DAYS)),
}


def test_calm_scenario_is_approved():
    decision = evaluate(request())
    assert decision.approved, decision.reason
    assert decision.quantity == D(6)  # 3% of $10,030 = $300.90 buys 6 shares at $50
    assert len(decision.checks) >= 5


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(VIOLATIONS)), st.sampled_from(sorted(VIOLATIONS)))
def test_property_34_micro_trades_respect_all_constraints(first, second):
    """Property 34: breaking any of the normal entry rules (trading window, circuit breakers,
    ticker cooldown, confidence, correlation, sector, earnings, heat, declining positions,
    open-position limit, Active Pool minimum) refuses the micro-trade, with a reason."""
    kwargs = {**VIOLATIONS[second], **VIOLATIONS[first]}
    req = kwargs.pop("req", request())
    decision = evaluate(req, **kwargs)
    assert not decision.approved
    assert decision.reason and decision.stops is None


def test_each_violation_names_its_rule():
    expected_words = {
        "outside_window": "trading window",
        "weekend": "trading window",
        "breaker_active": "circuit breaker",
        "ticker_cooldown": "cooling down",
        "correlation": "correlation",
        "confidence": "minimum",
        "earnings": "earnings",
        "sector_full": "sector",
        "heat": "heat",
        "declining": "declining",
        "max_open": "limit",
        "active_pool_minimum": "Active Pool",
        "disabled": "switched off",
        "not_intraday": "trend window",
    }
    for name, kwargs in VIOLATIONS.items():
        kwargs = dict(kwargs)
        decision = evaluate(kwargs.pop("req", request()), **kwargs)
        assert not decision.approved, name
        assert expected_words[name] in decision.reason, (name, decision.reason)


def test_high_severity_event_tightens_the_micro_stop_like_any_other():
    decision = evaluate(request(high_severity_event=True))
    assert decision.approved
    assert decision.stops.stop_loss_price == D(50) - D("0.5") * D("0.5")
    assert decision.stops.take_profit_price == D(50) + D("1.5") * D("0.25")


def test_unknown_open_time_is_closed():
    (exit_,) = positions_to_auto_close([position("X", "Tech", micro=True)], IN_WINDOW)
    assert "no recorded open time" in exit_.reason


def test_a_ticker_is_held_as_a_micro_trade_or_a_standard_position_never_both():
    """A micro-trade's tight stop and timed close must never govern a standard holding, nor a
    standard entry fold into a micro position: each side refuses the other, and a second
    micro-trade waits for the first to close."""
    standard = PortfolioState(calm_portfolio().positions + (position("NEW", "Banks"),), D(10000))
    micro_held = PortfolioState(
        calm_portfolio().positions + (position("NEW", "Banks", micro=True),), D(10000)
    )
    assert "standard position" in evaluate(request(), standard).reason
    assert "one micro-trade per ticker" in evaluate(request(), micro_held).reason
    assert evaluate(request(), calm_portfolio()).approved

    rec = Recommendation(1, "NEW", "buy", 0.9, "paper_eligible", "20d", "thesis", IN_WINDOW)
    market = MarketView(
        ticker_known=True, sector="Banks", price=D(10), daily_atr=D("0.2"), price_as_of=IN_WINDOW
    )
    context = DecisionContext(micro_held, NO_BREAKERS, EngineSettings(enabled=True), FixedCorrelation())
    decision = decide(rec, market, context, now=IN_WINDOW, decision_id=uuid.uuid4()).decision
    assert decision.skip_reason and "held as a micro-trade" in decision.skip_reason


def test_the_micro_stop_tightens_within_the_configured_earnings_window_not_a_fixed_three():
    """Issue 15: "earnings soon" for the micro stop is `earnings_reduce_sessions`, as for a
    standard entry (it was a hard-coded 3)."""

    def stop(window: int, sessions: int) -> Decimal:
        decision = evaluate_micro_trade(
            request(sessions_until_earnings=sessions),
            portfolio=calm_portfolio(),
            tier=RISK_TIER_DEFAULTS[RiskTierName.MODERATE],
            sizer=PositionSizer(FixedCorrelation(), SizingSettings(earnings_reduce_within_sessions=window)),
            breakers=NO_BREAKERS,
            micro_trades_today=0,
            now=IN_WINDOW,
            settings=ON,
        )
        assert decision.approved, decision.reason
        return decision.stops.stop_loss_price

    full, tightened = D(50) - D("0.5"), D(50) - D("0.5") * D("0.7")
    assert stop(window=5, sessions=4) == tightened  # inside a 5-session window
    assert stop(window=5, sessions=6) == full
    assert stop(window=2, sessions=3) == full  # outside a 2-session window (3 was tightened)
    assert stop(window=3, sessions=3) == tightened
