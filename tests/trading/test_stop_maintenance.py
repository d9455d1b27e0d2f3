"""Stop maintenance, the one rule live and backtest call (issue 13; seed tasks 6.1, 17.1):
`protection.maintain_stops` trails, re-evaluates (never a micro-trade's stop), closes
micro-trades past their hold and tightens for heat over the positions that stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.engine_settings import EngineSettings
from services.trading.core.micro_trading import MicroTradingSettings
from services.trading.core.models import CircuitBreakerState, HeldPosition, OpenPosition, StopLevels
from services.trading.core.protection import PositionMarket, maintain_stops, protect
from services.trading.core.quote import Quote

D = Decimal
NOW = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)  # 11:00 New York
SETTINGS = EngineSettings(enabled=True, micro=MicroTradingSettings(enabled=True))


def holding(
    ticker: str,
    *,
    micro: bool = False,
    entry: str = "100",
    stop: str = "96",
    take_profit: str = "108",
    quantity: str = "10",
    confidence: str = "0.7",
    opened: timedelta = timedelta(minutes=30),
    atr: str = "2",
    multiplier: str = "2",
) -> HeldPosition:
    position = OpenPosition(
        ticker,
        D(quantity),
        D(entry),
        D(entry),
        "Tech",
        D(stop),
        D(take_profit),
        D(confidence),
        micro,
        NOW - opened,
    )
    levels = StopLevels(D(stop), D(take_profit), False, D(atr), D(multiplier), D(2), NOW - timedelta(days=1))
    return HeldPosition(position, levels)


def run(held, prices, markets=None, *, total_value="100000", exiting=frozenset(), high_severity=False):
    return maintain_stops(
        held,
        {t: D(p) for t, p in prices.items()},
        markets or {},
        SETTINGS,
        NOW,
        high_severity_event=high_severity,
        total_value=D(total_value),
        exiting=frozenset(exiting),
    )


def test_a_moved_atr_re_evaluates_a_standard_stop_but_never_a_micro_trades() -> None:
    # ATR 2 -> 3 (+50%): the standard stop is re-evaluated (100 - 3 x 2 = 94 stays below 96,
    # so the stop holds at 96, take-profit is recomputed and the new ATR is kept); the
    # micro-trade's stop was set on intraday ATR and is left alone.
    held = [holding("STD"), holding("MIC", micro=True, multiplier="1")]
    markets = {t: PositionMarket(atr=D(3)) for t in ("STD", "MIC")}
    upkeep = run(held, {"STD": "100", "MIC": "100"}, markets)
    assert upkeep.level_updates["STD"].atr_value == D(3)
    assert "MIC" not in upkeep.level_updates


def test_a_holding_with_a_sell_on_its_way_is_neither_trailed_nor_tightened() -> None:
    # Heat: 3 x 100 shares x $4 risk = $1,200 of $9,000 > 80% of the moderate tier's 10%
    # maximum heat; the lowest-confidence holding is tightened first, unless it is leaving.
    held = [
        holding("LOW", quantity="100", confidence="0.5"),
        holding("MID", quantity="100", confidence="0.6"),
        holding("TOP", quantity="100", confidence="0.9"),
    ]
    prices = {"LOW": "105", "MID": "100", "TOP": "100"}  # LOW is past half way: it would trail
    leaving = run(held, prices, total_value="9000", exiting={"LOW"})
    staying = run(held, prices, total_value="9000")
    assert "LOW" not in leaving.level_updates
    assert leaving.level_updates["MID"].stop_loss_price == D(98)  # the cut falls on a position that stays
    assert staying.level_updates["LOW"].trailing_stop_active


def test_a_micro_trade_past_its_hold_is_closed_and_not_tightened() -> None:
    held = [
        holding("OLD", micro=True, quantity="100", confidence="0.5", opened=timedelta(minutes=120)),
        holding("NEW", micro=True, quantity="100", confidence="0.6", opened=timedelta(minutes=119)),
        holding("STD", quantity="100", confidence="0.9"),
    ]
    upkeep = run(held, {t: "100" for t in ("OLD", "NEW", "STD")}, total_value="9000")
    assert [m.ticker for m in upkeep.micro_closes] == ["OLD"]
    assert "OLD" not in upkeep.level_updates
    assert upkeep.level_updates["NEW"].stop_loss_price == D(98)


def test_a_level_the_price_crosses_is_reported_and_its_holding_not_tightened() -> None:
    held = [holding("HIT", quantity="100", confidence="0.5"), holding("OK", quantity="100", confidence="0.6")]
    upkeep = run(held, {"HIT": "95", "OK": "100"}, total_value="4000")
    assert upkeep.crossings["HIT"].trigger_type == "stop_loss"
    assert "HIT" not in upkeep.level_updates and "OK" in upkeep.level_updates


@st.composite
def books(draw):
    held, prices, markets = [], {}, {}
    for i in range(draw(st.integers(1, 6))):
        ticker = f"T{i}"
        entry = draw(st.integers(50, 200))
        risk = draw(st.integers(1, 10))
        held.append(
            holding(
                ticker,
                micro=draw(st.booleans()),
                entry=str(entry),
                stop=str(entry - risk),
                take_profit=str(entry + 2 * risk),
                quantity=str(draw(st.integers(1, 300))),
                confidence=str(draw(st.sampled_from(["0.5", "0.6", "0.7", "0.8"]))),
                opened=timedelta(minutes=draw(st.integers(0, 300))),
                atr=str(risk / 2),
            )
        )
        if draw(st.booleans()):
            prices[ticker] = str(entry + draw(st.integers(-2 * risk, 3 * risk)))
        atr = draw(st.one_of(st.none(), st.decimals("0.1", "20", places=2)))
        markets[ticker] = PositionMarket(atr=atr, earnings_soon=draw(st.booleans()))
    exiting = draw(st.sets(st.sampled_from([h.position.ticker for h in held])))
    return held, prices, markets, exiting


@settings(max_examples=200, deadline=None)
@given(books(), st.integers(1_000, 200_000), st.booleans())
def test_property_a_micro_trades_levels_are_never_re_evaluated_and_no_stop_moves_down(
    book, total_value, high_severity
) -> None:
    held, prices, markets, exiting = book
    upkeep = run(
        held, prices, markets, total_value=str(total_value), exiting=exiting, high_severity=high_severity
    )
    for h in held:
        new = upkeep.level_updates.get(h.position.ticker)
        if new is None:
            continue
        assert h.position.ticker not in exiting  # a holding with a sell on its way is left alone
        assert new.stop_loss_price >= h.levels.stop_loss_price  # a stop never moves down
        if h.position.is_micro_trade:  # re-evaluation is what changes the ATR and multiplier
            assert (new.atr_value, new.atr_multiplier) == (h.levels.atr_value, h.levels.atr_multiplier)
            assert new.take_profit_price == h.levels.take_profit_price
    closing = {m.ticker for m in upkeep.micro_closes}
    assert not closing & exiting
    assert all(h.position.is_micro_trade for h in held if h.position.ticker in closing)


def test_the_protective_pass_closes_on_its_own_maintained_levels() -> None:
    """The live pass: a crossed level and a micro-trade's hold each close once, a holding with a
    sell on its way gets nothing, and the levels it saves are `maintain_stops`'."""
    held = [
        holding("HIT", quantity="100", confidence="0.5"),
        holding("OLD", micro=True, opened=timedelta(minutes=150)),
        holding("GONE", quantity="100"),
        holding("OK", quantity="100", confidence="0.6"),
    ]
    prices = {"HIT": "95", "OLD": "100", "GONE": "90", "OK": "100"}
    quotes = {t: Quote(t, D(p), NOW - timedelta(minutes=1), "1m") for t, p in prices.items()}
    plan = protect(
        held,
        quotes,
        {},
        CircuitBreakerState(),
        SETTINGS,
        NOW,
        high_severity_event=False,
        total_value=D(4000),
        exiting=frozenset({"GONE"}),
    )
    assert [(e.ticker, e.reason.value) for e in plan.exits] == [("HIT", "stop_loss"), ("OLD", "micro_exit")]
    upkeep = run(held, prices, total_value="4000", exiting={"GONE"})
    assert plan.level_updates == upkeep.level_updates and "OK" in plan.level_updates
