"""What a backtest says happened (seed task 19.1): metrics, trade log, equity curve, gaps, and
every decision and event, as frozen values ready to persist or print.

The metrics are the performance tracker's own (property 36): win rate, profit factor, trade
count, max drawdown and the trailing-30 Sharpe come from `performance_tracker.compute_metrics`
on the run's end-of-day equity and closed trades; the whole-run Sharpe is the tracker's
`sharpe_ratio` over every daily return of the run instead of the last 30. Equity starts with the
initial capital, so a loss on the first day counts as drawdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.trading.backtest.config import BacktestConfig
from services.trading.backtest.market import DataGap
from services.trading.core import performance_tracker
from services.trading.core.models import ZERO, ClosedTrade, PortfolioState
from services.trading.core.reserve_pool import ReserveLedgerEntry
from services.trading.core.tax_lots import WashSale
from services.trading.core.trading_window import NEW_YORK

COMPLETED, FAILED = "completed", "failed"


@dataclass(frozen=True, slots=True)
class BacktestTrade:
    """One round trip (or the part of one a rebalance sold); `exit_at` None: still open at the
    end, valued at the last close in the final value but not counted as a trade."""

    ticker: str
    quantity: Decimal
    entry_price: Decimal
    entry_at: datetime
    exit_price: Decimal | None = None
    exit_at: datetime | None = None
    fees: Decimal = ZERO
    exit_reason: str | None = None
    recommendation_id: int | None = None
    side: str = "buy"

    @property
    def pnl(self) -> Decimal | None:
        return None if self.exit_price is None else self.closed_trade().pnl

    @property
    def entry_date(self) -> date:
        return self.entry_at.astimezone(NEW_YORK).date()

    @property
    def exit_date(self) -> date | None:
        return None if self.exit_at is None else self.exit_at.astimezone(NEW_YORK).date()

    @property
    def hold_duration_days(self) -> int | None:
        return None if self.exit_date is None else (self.exit_date - self.entry_date).days

    def closed_trade(self) -> ClosedTrade:
        if self.exit_price is None or self.exit_at is None:
            raise ValueError(f"the {self.ticker} position is still open")
        return ClosedTrade(
            self.ticker,
            self.entry_price,
            self.exit_price,
            self.quantity,
            self.entry_at,
            self.exit_at,
            self.recommendation_id,
            False,
            self.fees,
        )

    @classmethod
    def of(cls, trade: ClosedTrade, exit_reason: str) -> BacktestTrade:
        return cls(
            trade.ticker,
            trade.quantity,
            trade.entry_price,
            trade.entry_at,
            trade.exit_price,
            trade.exit_at,
            trade.fees,
            exit_reason,
            trade.recommendation_id,
        )


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One recommendation's decision, in short: the full trace is the live engine's to keep."""

    recommendation_id: int
    ticker: str
    action: str
    decided_at: datetime
    acted: bool
    check: str | None = None  # the check that said no
    reason: str | None = None
    quantity: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One simulated fill, as a broker would report it."""

    ticker: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class BacktestEvent:
    """Something the rules did besides trading: a breaker tripping or resolving, a tier change,
    a reserve release, a tranche cancelled, an order refused, a rebalance deferred."""

    at: datetime
    kind: str
    detail: str
    ticker: str | None = None


@dataclass(frozen=True, slots=True)
class Metrics:
    final_value: Decimal
    total_return: float
    sharpe_ratio: float  # whole run, annualised
    sharpe_ratio_30d: float  # trailing 30 daily returns, as the live tracker reports it
    max_drawdown: float
    win_rate: float
    profit_factor: float
    trade_count: int


def summarize(
    initial_capital: Decimal,
    equity: Sequence[Decimal],
    trades: Sequence[ClosedTrade],
    final: PortfolioState,
    at: datetime,
) -> Metrics:
    """The run's metrics by the performance tracker, from the end-of-day equity after the
    initial capital, the closed trades and the final portfolio (worth `equity[-1]`)."""
    curve = [initial_capital, *equity]
    report = performance_tracker.compute_metrics(
        portfolio=final,
        closed_trades=trades,
        equity_curve=curve,
        start_of_day_value=curve[-1],
        computed_at=at,
    )
    m = report.metrics
    returns = performance_tracker.daily_returns(curve)
    return Metrics(
        final_value=curve[-1],
        total_return=float(curve[-1] / initial_capital - 1),
        sharpe_ratio=performance_tracker.sharpe_ratio(returns, window=max(len(returns), 1)),
        sharpe_ratio_30d=m.sharpe_ratio,
        max_drawdown=m.max_drawdown,
        win_rate=m.win_rate,
        profit_factor=m.profit_factor,
        trade_count=m.trade_count,
    )


@dataclass(frozen=True, slots=True)
class TaxReport:
    realized_pnl: Decimal
    disallowed_loss: Decimal
    wash_sales: tuple[WashSale, ...]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    config: BacktestConfig
    status: str  # completed | failed
    error: str | None
    metrics: Metrics
    trades: tuple[BacktestTrade, ...]
    open_positions: tuple[BacktestTrade, ...]
    equity_curve: tuple[tuple[date, Decimal], ...]
    data_gaps: tuple[DataGap, ...]
    decisions: tuple[DecisionRecord, ...]
    events: tuple[BacktestEvent, ...]
    reserve_balance: Decimal
    final_risk_tier: str
    tax: TaxReport
    bars: int  # ticker-sessions with a bar in the range, the unit of bars/second
    sessions: int
    fills: tuple[FillRecord, ...] = ()  # every fill, in order
    reserve_ledger: tuple[ReserveLedgerEntry, ...] = ()

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    def details(self) -> dict[str, Any]:
        """Everything besides the headline columns, as stored in `backtest_runs.details`."""
        acted = sum(1 for d in self.decisions if d.acted)
        skipped: dict[str, int] = {}
        for d in self.decisions:
            if not d.acted:
                skipped[d.check or "unknown"] = skipped.get(d.check or "unknown", 0) + 1
        return {
            "sharpe_ratio_30d": _finite(self.metrics.sharpe_ratio_30d),
            "bars": self.bars,
            "sessions": self.sessions,
            "final_risk_tier": self.final_risk_tier,
            "reserve_balance": str(self.reserve_balance),
            "decisions": {"total": len(self.decisions), "acted": acted, "skipped_by_check": skipped},
            "events": [
                {"at": e.at.isoformat(), "kind": e.kind, "ticker": e.ticker, "detail": e.detail}
                for e in self.events
            ],
            "tax": {
                "realized_pnl": str(self.tax.realized_pnl),
                "disallowed_loss": str(self.tax.disallowed_loss),
                "wash_sales": [w.describe() for w in self.tax.wash_sales],
            },
            "open_positions": [
                {
                    "ticker": p.ticker,
                    "quantity": str(p.quantity),
                    "entry_price": str(p.entry_price),
                    "entry_date": p.entry_date.isoformat(),
                }
                for p in self.open_positions
            ],
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
