"""Protective exits on a daily bar: stops, trailing stops, take-profits and the single-position
circuit breaker, for every open position at once.

numpy finds the candidates (positions whose bar reaches a level, with a small tolerance so a
float rounding can never hide one); for each candidate the decision core says whether the
level is crossed (`stop_loss_manager.check_price_crossing`, `circuit_breaker.check_single_position`)
and the fill model says at which price it fills. On most days no position is a candidate and
no Python-level work is done per position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.trading.backtest.book import Holding
from services.trading.backtest.fill_model import ExitFill, ExitLevels, exit_on_bar
from services.trading.backtest.market import MarketData, to_decimal
from services.trading.core import circuit_breaker, stop_loss_manager
from services.trading.core.circuit_breaker import BreakerCheck, BreakerSettings
from services.trading.core.models import CircuitBreakerState

TOLERANCE = 1e-9  # relative: candidates include levels within float rounding of the price
BREAKER_MARGIN = 0.99  # candidates for the breaker: loss above 99% of its threshold


@dataclass(frozen=True, slots=True)
class ExitSignal:
    holding: Holding
    fill: ExitFill
    reason: str  # stop_loss | trailing_stop | take_profit | single_position_breaker
    breaker: BreakerCheck | None = None


def find_exits(
    market: MarketData,
    day: int,
    held: list[Holding],
    rows: np.ndarray,
    stops: np.ndarray,
    take_profits: np.ndarray,
    entries: np.ndarray,
    breakers: CircuitBreakerState,
    at: datetime,
    settings: BreakerSettings,
    *,
    at_open: bool,
    opened_today: set[str],
) -> list[ExitSignal]:
    """Exits for this bar: at the open only (gaps), or over the rest of the bar (low/high)."""
    if not held:
        return []
    if at_open:
        low = high = market.open[rows, day]
    else:
        low, high = market.low[rows, day], market.high[rows, day]
    loss_limit = float(settings.single_position_loss_pct) * BREAKER_MARGIN
    # A missing bar is NaN, and NaN compares False: no candidate, the day is skipped for it.
    candidate = (low <= stops * (1 + TOLERANCE)) | (high >= take_profits * (1 - TOLERANCE))
    candidate |= low < entries * (1 - loss_limit)
    if not candidate.any():
        return []
    signals = []
    for i in np.flatnonzero(candidate):
        holding = held[i]
        if at_open and holding.ticker in opened_today:
            continue
        signal = _exit(market, day, holding, breakers, at, settings, at_open=at_open)
        if signal is not None:
            signals.append(signal)
    return signals


def _exit(
    market: MarketData,
    day: int,
    holding: Holding,
    breakers: CircuitBreakerState,
    at: datetime,
    settings: BreakerSettings,
    *,
    at_open: bool,
) -> ExitSignal | None:
    row, levels = holding.row, holding.levels
    open_ = to_decimal(market.open[row, day])
    low = open_ if at_open else to_decimal(market.low[row, day])
    high = open_ if at_open else to_decimal(market.high[row, day])
    down = stop_loss_manager.check_price_crossing(holding.ticker, levels, low)
    stop_hit = down is not None and down.trigger_type != "take_profit"
    up = stop_loss_manager.check_price_crossing(holding.ticker, levels, high)
    take_profit_hit = up is not None and up.trigger_type == "take_profit"
    check = circuit_breaker.check_single_position(breakers, holding.position(low), at, settings)
    breaker_hit = check.event is not None
    exit_levels = ExitLevels(
        levels.stop_loss_price,
        levels.take_profit_price,
        holding.entry_price * (1 - settings.single_position_loss_pct),
    )
    fill = exit_on_bar(
        exit_levels,
        open_,
        stop_hit=stop_hit,
        breaker_hit=breaker_hit,
        take_profit_hit=take_profit_hit,
        include_open=at_open,
    )
    if fill is None:
        return None
    if fill.kind == "stop":
        return ExitSignal(holding, fill, down.trigger_type)  # type: ignore[union-attr]
    if fill.kind == "breaker":
        return ExitSignal(holding, fill, "single_position_breaker", check)
    return ExitSignal(holding, fill, "take_profit")
