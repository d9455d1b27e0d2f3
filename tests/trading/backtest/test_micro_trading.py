"""Micro-trading in the backtest (issue 13): today's micro entries are counted against the daily
limit and a micro holding is closed once past its maximum hold, as the live engine does.

Daily bars: a micro-trade decided at 09:45 fills at the 09:30 open; by the session's close
(16:00, its first price after the 120-minute hold) it is closed at that close."""

from __future__ import annotations

from decimal import Decimal

from services.trading.backtest import BacktestConfig, BacktestData, Backtester, FillModel
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.micro_trading import MicroTradingSettings
from services.trading.core.models import Recommendation
from services.trading.core.trading_window import session_times
from tests.trading.backtest.bars import NO_COMMISSION, NO_TRANCHES, SESSIONS, WARMUP, D, flat, market

E = WARMUP  # the first session traded


def micro_rec(rec_id: int, ticker: str, session: int) -> Recommendation:
    """A 1-day buy signal (a micro-trade candidate) stamped at the close of SESSIONS[session]."""
    close = session_times(SESSIONS[session])[1]
    return Recommendation(rec_id, ticker, "buy", 0.7, "paper_eligible", "1d", "hand-made", close)


def test_the_daily_micro_limit_and_the_timed_close_happen_in_a_backtest() -> None:
    tickers = ("AAA", "BBB", "CCC")
    bars = flat(100) + [(100, 100.5, 99.5, 100.25)] * 3  # never reaches a micro stop or target
    recs = [micro_rec(i, t, E - 1) for i, t in enumerate(tickers, start=1)] + [micro_rec(4, "CCC", E)]
    settings = EngineSettings(
        enabled=True, gradual=NO_TRANCHES, micro=MicroTradingSettings(enabled=True, max_daily=2)
    )
    config = BacktestConfig(
        SESSIONS[E],
        SESSIONS[E + 2],
        Decimal(10_000),
        settings.risk_tier,
        fill=FillModel(slippage_bps=Decimal(0), commission=NO_COMMISSION),
        settings=settings,
    )
    data = BacktestData(market({t: bars for t in tickers}), recs, intraday_atr={t: D(1) for t in tickers})
    result = Backtester(data).run(config)
    assert result.completed, result.error

    acted = {(d.recommendation_id, d.acted) for d in result.decisions}
    assert acted == {(1, True), (2, True), (3, False), (4, True)}
    refused = next(d for d in result.decisions if d.recommendation_id == 3)
    assert "2 micro-trades already opened today, the daily limit is 2" in (refused.reason or "")

    # Each micro-trade closed at its entry session's close, past its 120-minute hold.
    closes = sorted((t.ticker, t.exit_at.date(), t.exit_reason, t.exit_price) for t in result.trades)
    assert closes == [
        ("AAA", SESSIONS[E], "micro_exit", D("100.25")),
        ("BBB", SESSIONS[E], "micro_exit", D("100.25")),
        ("CCC", SESSIONS[E + 1], "micro_exit", D("100.25")),
    ]
