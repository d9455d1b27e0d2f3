"""A later tranche meets the entry checks again, at its price when due (issue 13): examples by
hand, and the heat property stated on its own arithmetic.

By hand (moderate tier: 10% position, 35% sector, 10% heat): $10,000 cash and tranche 1 held,
10 XYZ bought at 50 with its stop at 47. Tranche 2 is 10 more, stop distance 3.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import RiskTierName
from services.trading.core.decision import MarketView
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import CircuitBreakerState, OpenPosition, PortfolioState
from services.trading.core.tranche_check import WAIT, Cut, DueTranche, Refusal, check_tranche

D = Decimal
# Tuesday 2024-03-05, 11:00 New York: inside the trading window.
NOW = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
SESSION = date(2024, 3, 5)
ON = EngineSettings(enabled=True)
MARKET = MarketView(
    ticker_known=True,
    sector="Technology",
    price=D(50),
    daily_atr=D("1.5"),
    price_as_of=datetime(2024, 3, 5, 14, 30, tzinfo=UTC),
)
TRANCHE = DueTranche("XYZ", D(10), 2, 3, SESSION, D(3), D("0.8"))


class Correlation:
    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def get_portfolio_correlation(self, candidate, positions) -> float:
        return self.value


def _position(ticker, quantity, entry, stop, price=None, sector="Technology") -> OpenPosition:
    price = entry if price is None else price
    return OpenPosition(ticker, D(quantity), D(entry), D(price), sector, D(stop), D(entry) * 2, D("0.8"))


def _check(
    *others,
    price=50,
    cash="10000",
    settings_=ON,
    market=MARKET,
    correlation=0.0,
    now=NOW,
    tranche=TRANCHE,
    breakers=CircuitBreakerState(),
):
    held = _position("XYZ", 10, 50, 47, price)
    portfolio = PortfolioState((held, *others), D(cash))
    return check_tranche(
        tranche,
        portfolio,
        breakers,
        settings_,
        replace(market, price=D(price)),
        Correlation(correlation),
        now,
    )


def test_a_tranche_that_still_fits_goes_as_decided() -> None:
    assert _check() is None


def test_a_tranche_that_would_take_heat_over_the_cap_is_refused() -> None:
    # Total $15,500: heat may reach $1,550. Held risk 30 + 1,500 = 1,530; the tranche adds 30.
    refused = _check(_position("ABC", 100, 50, 35, sector="Energy"))
    assert isinstance(refused, Refusal) and "portfolio heat would be 0.1006" in refused.reason


def test_a_tranche_into_a_full_sector_is_refused() -> None:
    # Technology holds $5,500 of $15,500, over its 35% ($5,425) since the decision.
    refused = _check(_position("ABC", 100, 50, 49))
    assert isinstance(refused, Refusal) and "sector 'Technology' already holds $5500.00" in refused.reason


def test_a_tranche_whose_price_rose_is_cut_to_the_position_limit() -> None:
    # At 60 the position is worth $600 of a $10,600 book: it may reach $1,060, room $460 = 7 shares.
    cut = _check(price=60)
    assert isinstance(cut, Cut) and cut.quantity == D(7)
    assert "may reach $1060.00" in cut.reason


def test_a_tranche_on_a_correlated_book_is_refused() -> None:
    refused = _check(_position("ABC", 10, 50, 49, sector="Energy"), correlation=0.85)
    assert isinstance(refused, Refusal) and "correlation 0.8500" in refused.reason


def test_a_tranche_needs_a_current_price() -> None:
    old = replace(MARKET, price_as_of=NOW - timedelta(days=5))
    refused = _check(market=old)
    assert isinstance(refused, Refusal) and "latest price" in refused.reason


def test_a_tranche_is_refused_when_most_positions_decline() -> None:
    # XYZ is held at 50; ABC and DEF are down 10%: 2 of 3 declining.
    refused = _check(
        _position("ABC", 1, 50, 40, 45, sector="Energy"), _position("DEF", 1, 50, 40, 45, sector="Energy")
    )
    assert isinstance(refused, Refusal) and "new entries halted" in refused.reason


def test_a_tranche_is_refused_below_the_tiers_minimum_confidence() -> None:
    conservative = replace(ON, risk_tier=RiskTierName.CONSERVATIVE)  # minimum 0.75
    refused = _check(tranche=replace(TRANCHE, confidence=D("0.7")), settings_=conservative)
    assert isinstance(refused, Refusal) and "minimum" in refused.reason


def test_the_day_order_rules_come_first() -> None:
    paused = _check(settings_=replace(ON, paused=True))
    assert isinstance(paused, Refusal) and "paused" in paused.reason
    late = _check(tranche=replace(TRANCHE, session=date(2024, 3, 4)))
    assert isinstance(late, Refusal) and "earlier session" in late.reason
    assert _check(now=datetime(2024, 3, 5, 14, 35, tzinfo=UTC)) is WAIT  # 09:35, before the window
    closed = _check(now=datetime(2024, 3, 5, 20, 50, tzinfo=UTC))  # 15:50
    assert isinstance(closed, Refusal) and "window closed" in closed.reason
    cooling = CircuitBreakerState(ticker_cooldowns={"XYZ": NOW + timedelta(hours=1)})
    refused = _check(breakers=cooling)
    assert isinstance(refused, Refusal) and "cooldown" in refused.reason


positions = st.lists(
    st.tuples(
        st.integers(1, 200),  # quantity
        st.integers(10, 200),  # entry
        st.integers(0, 100),  # stop as a percentage of the entry
        st.integers(90, 130),  # price as a percentage of the entry
    ),
    max_size=5,
)


def _sent(others, cash, quantity, distance, price):
    """The book, the tranche, and how many of its shares `check_tranche` lets go."""
    book = [
        _position(f"P{i}", q, entry, D(entry) * stop / 100, D(entry) * at / 100, sector=f"S{i}")
        for i, (q, entry, stop, at) in enumerate(others)
    ]
    held = _position("XYZ", 10, 50, 47, price)
    tranche = replace(TRANCHE, quantity=D(quantity), stop_distance=D(distance))
    verdict = check_tranche(
        tranche,
        PortfolioState((held, *book), D(cash)),
        CircuitBreakerState(),
        ON,
        replace(MARKET, price=D(price)),
        Correlation(),
        NOW,
    )
    if verdict is None:
        return held, book, tranche, tranche.quantity
    if isinstance(verdict, Cut):
        assert 0 < verdict.quantity < tranche.quantity
        return held, book, tranche, verdict.quantity
    return held, book, tranche, D(0)


tranches = {
    "others": positions,
    "cash": st.integers(0, 20_000),
    "quantity": st.integers(1, 100),
    "distance": st.integers(0, 40),
    "price": st.integers(10, 100),
}


@settings(max_examples=200, deadline=None)
@given(**tranches)
def test_no_tranche_is_sent_that_would_take_heat_over_the_tiers_cap(
    others, cash, quantity, distance, price
) -> None:
    """Whatever goes out (the tranche, or its cut) keeps the book's heat, counted as
    sum(shares x (entry - stop)) over total value with the tranche's own stop distance, at or
    below the tier's cap."""
    held, book, tranche, sent = _sent(others, cash, quantity, distance, price)
    total = D(cash) + sum(p.quantity * p.current_price for p in (held, *book))
    risk = sum(p.quantity * max(p.entry_price - p.stop_loss_price, D(0)) for p in (held, *book))
    assert sent == 0 or (risk + sent * D(distance)) / total <= ON.tier.max_portfolio_heat
    if (risk + tranche.quantity * D(distance)) / total > ON.tier.max_portfolio_heat:
        assert sent < tranche.quantity  # never sent as decided


@settings(max_examples=200, deadline=None)
@given(**tranches)
def test_no_tranche_takes_its_position_over_the_position_limit(
    others, cash, quantity, distance, price
) -> None:
    """Whatever goes out keeps the position, at the price now, within the tier's share of the
    Active Pool and the absolute cap."""
    held, book, _, sent = _sent(others, cash, quantity, distance, price)
    total = D(cash) + sum(p.quantity * p.current_price for p in (held, *book))
    limit = min(ON.tier.max_position_pct * total, ON.sizing.absolute_position_cap)
    assert sent == 0 or (held.quantity + sent) * D(price) <= limit
