"""`Backtester.run(BacktestConfig) -> BacktestResult` (seed task 19.1): history replayed through
the engine's own decision core.

The backtester is handed its history as a `BacktestData` (bars, recommendations or none to
use the momentum signal, sectors, earnings dates, macro events) and does no I/O: the store
loads from PostgreSQL, `sample_backtest_data` from the bundled sample. A rule raising mid-run
does not lose the run: the result comes back `failed`, with the error and everything up to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.trading.backtest import signals
from services.trading.backtest.config import BacktestConfig, BacktestConfigError
from services.trading.backtest.context import MarketContext
from services.trading.backtest.market import MarketData, warmup_start
from services.trading.backtest.results import (
    COMPLETED,
    FAILED,
    BacktestResult,
    BacktestTrade,
    TaxReport,
    summarize,
)
from services.trading.backtest.simulation import Progress, Simulation
from services.trading.core.models import PortfolioState, Recommendation


@dataclass(frozen=True)
class BacktestData:
    """The history a backtest replays. `recommendations` None: the momentum signal is run on
    the bars. `known_tickers` are tickers the `tickers` table knows even without bars."""

    market: MarketData
    recommendations: Sequence[Recommendation] | None = None
    known_tickers: frozenset[str] = frozenset()
    sectors: Mapping[str, str] = field(default_factory=dict)
    earnings: Mapping[str, Sequence[date]] = field(default_factory=dict)
    high_severity_events: Sequence[tuple[datetime, datetime | None]] = ()
    # ATR(14) of intraday bars per ticker: a micro-trade's stop needs it, and daily bars cannot
    # give it. Without it, as live without intraday bars, a micro-trade signal is skipped.
    intraday_atr: Mapping[str, Decimal] = field(default_factory=dict)


class Backtester:
    def __init__(self, data: BacktestData) -> None:
        self.data = data

    def run(self, config: BacktestConfig, progress: Progress | None = None) -> BacktestResult:
        market = self.data.market
        first, last = self._range(config)
        rows = self._universe(config)
        recs = self.data.recommendations
        if recs is None:
            recs = signals.momentum_recommendations(market, rows)
        if config.tickers:
            wanted = set(config.tickers)
            recs = [r for r in recs if r.ticker in wanted]
        context = MarketContext(
            market,
            self.data.known_tickers,
            self.data.sectors,
            self.data.earnings,
            self.data.high_severity_events,
            self.data.intraday_atr,
        )
        simulation = Simulation(
            config, context, signals.schedule(recs, market, first, last), first, last, progress
        )
        error = None
        try:
            simulation.run()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a failed, partial result
            day = market.sessions[simulation.day] if simulation.day is not None else config.start_date
            error = f"failed on {day}: {type(exc).__name__}: {exc}"
        if error is None:
            simulation.expire_pending()
        return _result(config, simulation, market, rows, first, last, error)

    def _range(self, config: BacktestConfig) -> tuple[int, int]:
        market = self.data.market
        first = market.session_index(config.start_date)
        last = market.session_index(config.end_date, side="right") - 1
        if first > last:
            raise BacktestConfigError(
                "start_date", f"no market data sessions between {config.start_date} and {config.end_date}"
            )
        return first, last

    def _universe(self, config: BacktestConfig) -> list[int]:
        market = self.data.market
        missing = [t for t in config.tickers if t not in market.index]
        if missing:
            raise BacktestConfigError(
                "tickers", f"unknown ticker(s) {', '.join(missing)}: no daily bars loaded"
            )
        return (
            [market.index[t] for t in config.tickers] if config.tickers else list(range(len(market.tickers)))
        )


def _result(
    config: BacktestConfig,
    simulation: Simulation,
    market: MarketData,
    rows: list[int],
    first: int,
    last: int,
    error: str | None,
) -> BacktestResult:
    book = simulation.book
    equity = tuple(simulation.equity)
    values = [value for _, value in equity]
    final = values[-1] if values else config.initial_capital
    at = market.session_close[last if error is None else (simulation.day or first)]
    trades = tuple(BacktestTrade.of(r.trade, r.exit_reason) for r in book.trades)
    metrics = summarize(
        config.initial_capital, values, [r.trade for r in book.trades], PortfolioState((), final), at
    )
    open_positions = tuple(
        BacktestTrade(
            h.ticker,
            h.quantity,
            h.entry_price,
            h.opened_at,
            fees=h.entry_fees,
            recommendation_id=h.recommendation_id,
        )
        for h in book.holdings.values()
    )
    return BacktestResult(
        config=config,
        status=COMPLETED if error is None else FAILED,
        error=error,
        metrics=metrics,
        trades=trades,
        open_positions=open_positions,
        equity_curve=equity,
        data_gaps=tuple(market.gaps(rows, first, last)),
        decisions=tuple(simulation.decisions),
        events=tuple(simulation.events),
        reserve_balance=book.reserve.balance,
        final_risk_tier=simulation.settings.risk_tier.value,
        tax=TaxReport(book.tax.realized_pnl, book.tax.disallowed_loss, tuple(book.tax.wash_sales)),
        bars=int(market.valid[rows][:, first : last + 1].sum()),
        sessions=last - first + 1,
        fills=tuple(book.fills),
        reserve_ledger=tuple(book.reserve_ledger),
    )


def sample_backtest_data(start: date, end: date, tickers: Sequence[str] | None = None) -> BacktestData:
    """The bundled real sample (AAPL, GOOG, IBM, MSFT daily bars 2000-03..2013-03, sectors,
    SEC earnings dates), with warm-up history before `start`; recommendations from the
    momentum signal."""
    from services.trading.market import sample_data

    symbols = tuple(tickers or sample_data.SAMPLE_TICKERS)
    unknown = [t for t in symbols if t not in sample_data.SAMPLE_TICKERS]
    if unknown:
        raise BacktestConfigError(
            "tickers",
            f"unknown ticker(s) {', '.join(unknown)}: the sample has {', '.join(sample_data.SAMPLE_TICKERS)}",
        )
    sectors = {t.ticker: t.sector for t in sample_data.sample_tickers(symbols)}
    market = MarketData.from_bars(sample_data.load_sample_bars(symbols), warmup_start(start), end, sectors)
    earnings: dict[str, list[date]] = {}
    for e in sample_data.sample_earnings(symbols):
        earnings.setdefault(e.ticker, []).append(e.earnings_date)
    return BacktestData(
        market, None, frozenset(symbols), sectors, {t: sorted(d) for t, d in earnings.items()}
    )
