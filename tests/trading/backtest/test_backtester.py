"""The backtester as a whole: deterministic, driven by the decision core's rules, fed by its
signal sources, and configured with clear errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from services.shared.schemas import RiskTierName
from services.trading.backtest import (
    BacktestConfig,
    BacktestConfigError,
    Backtester,
    MarketData,
    sample_backtest_data,
)
from services.trading.backtest.signals import RecommendationCsvError, read_recommendations_csv
from services.trading.core import correlation, entry_guards, stop_loss_manager
from services.trading.core.correlation import LOOKBACK_DAYS
from services.trading.core.stop_loss_manager import ATR_LOOKBACK_BARS

START, END = date(2008, 1, 2), date(2009, 12, 31)


@pytest.fixture(scope="module")
def sample():
    return sample_backtest_data(START, END)


def _config(**changes) -> BacktestConfig:
    values = {
        "start_date": START,
        "end_date": END,
        "initial_capital": Decimal(50_000),
        "risk_tier": RiskTierName.AGGRESSIVE,
        "signals": "momentum",
    }
    return BacktestConfig(**{**values, **changes})


def test_the_same_config_twice_gives_identical_results(sample) -> None:
    first = Backtester(sample).run(_config())
    second = Backtester(sample_backtest_data(START, END)).run(_config())
    assert first.completed and first.trades and first.decisions
    assert first == second


def test_a_changed_rule_changes_the_backtest(sample, monkeypatch) -> None:
    before = Backtester(sample).run(_config())
    assert before.trades
    refuse = entry_guards.GuardResult(False, "test: no new positions", "max_open_positions")
    monkeypatch.setattr(entry_guards, "check_max_open_positions", lambda *a, **k: refuse)
    after = Backtester(sample).run(_config())
    assert after.trades == () and after.open_positions == ()
    buys = [d for d in after.decisions if d.action == "buy" and d.check == "entry_gate"]
    assert buys and all(d.reason == "test: no new positions" for d in buys)


def test_the_float_atr_estimate_matches_the_cores_atr_on_real_bars(sample) -> None:
    # The estimate only decides when to ask the core again; it must agree with it, or a change to
    # the core's ATR would go unnoticed here.
    market = sample.market
    for row in range(len(market.tickers)):
        days = [
            d
            for d in range(ATR_LOOKBACK_BARS, len(market.sessions), 7)
            if market.valid[row, d - ATR_LOOKBACK_BARS + 1 : d + 1].all()
        ]
        estimates = [market.atr_estimates(np.array([row]), d)[0] for d in days]
        exact = [float(market.atr(row, d)) for d in days]
        assert estimates == pytest.approx(exact, rel=1e-9)
    bars = [
        stop_loss_manager.Bar(Decimal(h), Decimal(lo), Decimal(c)) for h, lo, c in [("11", "9", "10")] * 20
    ]
    assert stop_loss_manager.average_true_range(bars) == 2


def test_the_atr_a_decision_sees_is_exactly_the_cores_on_decimal_bars(sample) -> None:
    # market.atr hands whole-number prices to the core and scales the result back: the same digits.
    market = sample.market
    for row in range(len(market.tickers)):
        assert market.places[row] == 4
        for day in range(ATR_LOOKBACK_BARS + 3, len(market.sessions), 37):
            present = np.flatnonzero(market.valid[row, : day + 1])[-ATR_LOOKBACK_BARS:]
            if present.size < 15:
                continue
            bars = [
                stop_loss_manager.Bar(
                    Decimal(repr(float(market.high[row, i]))),
                    Decimal(repr(float(market.low[row, i]))),
                    Decimal(repr(float(market.close[row, i]))),
                )
                for i in present
            ]
            assert market.atr(row, day) == stop_loss_manager.average_true_range(bars)


def test_an_unknown_ticker_or_an_empty_range_is_a_config_error(sample) -> None:
    with pytest.raises(BacktestConfigError, match="unknown ticker.*NOPE") as error:
        Backtester(sample).run(_config(tickers=("AAPL", "NOPE")))
    assert error.value.field == "tickers"
    with pytest.raises(BacktestConfigError, match="no market data sessions"):
        Backtester(sample).run(_config(start_date=date(2010, 1, 2), end_date=date(2010, 1, 3)))


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"end_date": "2007-01-01"}, "end_date", "before start date"),
        ({"risk_tier": "bold"}, "risk_tier", "unknown risk tier 'bold'"),
        ({"initial_capital": "0"}, "initial_capital", "positive"),
        ({"initial_capital": "lots"}, "initial_capital", "not a number"),
        ({"tickers": "AAPL,not a ticker"}, "tickers", "not a ticker symbol"),
        ({"signals": "tea leaves"}, "signals", "unknown signal source"),
        ({"signals": "csv"}, "csv_path", "need the path"),
        ({"slippage_bps": "-1"}, "slippage_bps", "slippage"),
        ({"start_date": "1999-12-31"}, "start_date", "outside the market calendar"),
        ({"colour": "blue"}, "colour", "unknown backtest option"),
    ],
)
def test_config_errors_name_the_field(raw, field, message) -> None:
    values = {"start_date": "2008-01-02", "end_date": "2009-12-31", "initial_capital": "10000", **raw}
    with pytest.raises(BacktestConfigError, match=message) as error:
        BacktestConfig.parse(**values)
    assert error.value.field == field


def test_parse_reads_loose_input() -> None:
    config = BacktestConfig.parse(
        start_date="2008-01-02",
        end_date="2009-12-31",
        initial_capital="$25,000",
        risk_tier="Conservative",
        tickers=["aapl, msft", "IBM"],
        csv_path="recs.csv",
    )
    assert config.initial_capital == Decimal(25000) and config.risk_tier is RiskTierName.CONSERVATIVE
    assert config.tickers == ("AAPL", "MSFT", "IBM") and config.signals.value == "csv"
    assert config.settings.enabled and config.settings.risk_tier is RiskTierName.CONSERVATIVE


def test_to_input_gives_back_what_parse_rebuilds_the_config_from() -> None:
    config = BacktestConfig.parse(
        start_date="2008-01-02",
        end_date="2009-12-31",
        initial_capital="25000.50",
        tickers="AAPL,MSFT",
        csv_path="recs.csv",
        slippage_bps="7.5",
        commission_per_order="1",
        commission_per_share="0.005",
        commission_pct="0.001",
        tranche_spacing_sessions=2,
        fill_timing="live",
        rebalance_weekly=False,
    )
    assert BacktestConfig.parse(**config.to_input()) == config


def test_recommendations_from_a_csv_are_replayed(sample, tmp_path: Path) -> None:
    path = tmp_path / "recs.csv"
    path.write_text(
        "ticker,action,confidence,date\nAAPL,buy,0.9,2008-03-20\nAAPL,sell,0.9,2008-05-30\n"
        "MSFT,hold,0.9,2008-03-20\n"
    )
    recs = read_recommendations_csv(path)
    assert [(r.ticker, r.action) for r in recs] == [("AAPL", "buy"), ("AAPL", "sell"), ("MSFT", "hold")]
    result = Backtester(type(sample)(sample.market, recs)).run(_config(signals="csv", csv_path=path))
    assert [d.action for d in result.decisions] == ["buy", "sell"]  # a hold is never polled
    assert result.decisions[0].acted and len(result.trades) == 1
    # The take-profit took the position out before the sell came, which then had nothing to sell.
    assert result.trades[0].exit_reason == "take_profit" and result.decisions[1].check == "position"


def test_a_bad_csv_names_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ticker,action,confidence,date\nAAPL,buy,high,2008-03-20\nAAPL,buy,0.9,2008-03-22\n")
    with pytest.raises(
        RecommendationCsvError, match="line 2: confidence 'high'.*line 3: 2008-03-22 is not an NYSE"
    ):
        read_recommendations_csv(path)


def test_the_correlation_returns_cut_from_the_whole_history_are_the_windows_own_to_the_bit(sample) -> None:
    # The backtest computes each ticker's daily returns once and cuts every decision's window
    # from them: the centred returns must be those of the window's own closes, bit for bit.
    real = sample.market
    closes = real.close.copy()
    closes[1, 150:153] = np.nan  # a hole: returns either side of it are undefined
    closes[2, ::17] = -1.0  # a close that is no price
    market = MarketData(real.tickers, real.sessions, closes, closes, closes, closes)
    rows = [2, 0, 1, 3]
    for day in (0, 1, 2, 45, 91, 150, 153, 240, len(market.sessions) - 1):
        for chosen in (rows, rows[:1], rows[1:3]):
            x, m = correlation.centre_returns(market.correlation_returns(chosen, day, LOOKBACK_DAYS))
            x0, m0 = correlation.centred_returns(market.correlation_window(chosen, day, LOOKBACK_DAYS))
            assert x.shape == x0.shape and np.array_equal(m, m0)
            assert np.array_equal(x.view(np.int64), x0.view(np.int64))
            # And centred on one slice of every ticker's returns, as a correlation question asks:
            # the same bits in the same layout (the correlation's sums depend on both).
            x1, m1 = market.centred_correlation_returns(chosen, day, LOOKBACK_DAYS)
            assert np.array_equal(x1.view(np.int64), x0.view(np.int64)) and np.array_equal(m1, m0)
            assert x1.flags.f_contiguous and m1.flags.f_contiguous
