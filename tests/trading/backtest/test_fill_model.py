"""The fill model: where market orders and protective exits fill on a daily bar."""

from __future__ import annotations

from decimal import Decimal as D

from services.trading.backtest import CommissionModel, FillModel
from services.trading.backtest.fill_model import ExitLevels, exit_on_bar, market_fill_price

LEVELS = ExitLevels(stop=D(96), take_profit=D(108), breaker=D(92))


def test_slippage_goes_against_the_trader() -> None:
    model = FillModel()  # 5 bps
    assert market_fill_price(D(100), "buy", model) == D("100.05")
    assert market_fill_price(D(100), "sell", model) == D("99.95")
    assert market_fill_price(D(100), "buy", FillModel(slippage_bps=D(0))) == D(100)


def test_commission_adds_its_parts() -> None:
    assert CommissionModel().commission(D(10), D(50)) == 0
    model = CommissionModel(per_order=D(1), per_share=D("0.005"), pct_of_notional=D("0.001"))
    assert model.commission(D(100), D(50)) == D(1) + D("0.5") + D(5)


def test_a_gap_through_a_level_fills_at_the_open() -> None:
    assert exit_on_bar(LEVELS, D(90), stop_hit=True, breaker_hit=True, take_profit_hit=False).price == D(90)
    assert exit_on_bar(LEVELS, D(90), stop_hit=True, breaker_hit=True, take_profit_hit=False).kind == "stop"
    gap_up = exit_on_bar(LEVELS, D(111), stop_hit=False, breaker_hit=False, take_profit_hit=True)
    assert (gap_up.kind, gap_up.price, gap_up.at_open) == ("take_profit", D(111), True)


def test_inside_the_bar_levels_fill_at_their_price_and_the_stop_comes_first() -> None:
    fill = exit_on_bar(
        LEVELS, D(100), stop_hit=True, breaker_hit=False, take_profit_hit=True, include_open=False
    )
    assert (fill.kind, fill.price, fill.at_open) == ("stop", D(96), False)
    fill = exit_on_bar(
        LEVELS, D(100), stop_hit=False, breaker_hit=False, take_profit_hit=True, include_open=False
    )
    assert (fill.kind, fill.price) == ("take_profit", D(108))
    assert exit_on_bar(LEVELS, D(100), stop_hit=False, breaker_hit=False, take_profit_hit=False) is None


def test_the_higher_downside_level_is_met_first() -> None:
    wide_stop = ExitLevels(stop=D(90), take_profit=D(120), breaker=D(92))
    fill = exit_on_bar(
        wide_stop, D(100), stop_hit=True, breaker_hit=True, take_profit_hit=False, include_open=False
    )
    assert (fill.kind, fill.price) == ("breaker", D(92))
    fill = exit_on_bar(
        LEVELS, D(100), stop_hit=True, breaker_hit=True, take_profit_hit=False, include_open=False
    )
    assert (fill.kind, fill.price) == ("stop", D(96))
