"""Protective exits on a daily bar: stops, trailing stops, take-profits and the single-position
circuit breaker, for every open position at once.

A float comparison finds the candidates (positions whose bar reaches a level, with a small
tolerance so a float rounding can never hide one); for each candidate the decision core says
whether the level is crossed (`stop_loss_manager.check_price_crossing`,
`circuit_breaker.check_single_position`) and the fill model says at which price it fills. On
most days no position is a candidate and no Decimal is built. The book holds at most a few
dozen positions: a plain loop over them costs less than numpy's calls would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.shared.schemas import OrderReason
from services.trading.backtest.book import Holding
from services.trading.backtest.fill_model import ExitFill, ExitLevels, exit_on_bar
from services.trading.backtest.market import MarketData, to_decimal
from services.trading.core import circuit_breaker, stop_loss_manager
from services.trading.core.circuit_breaker import BreakerCheck, BreakerSettings
from services.trading.core.models import CircuitBreakerState

TOLERANCE = 1e-9  # relative: candidates include levels within float rounding of the price
BREAKER_MARGIN = 0.99  # candidates for the breaker: loss above 99% of its threshold


# A holding with its row and its levels as floats: what finding the candidates reads.
ExitTrigger = tuple[Holding, int, float, float, float]


@dataclass(frozen=True, slots=True)
class ExitSignal:
    holding: Holding
    fill: ExitFill
    reason: str  # an OrderReason: stop_loss | trailing_stop | take_profit | emergency (the breaker)
    breaker: BreakerCheck | None = None


def find_exits(
    market: MarketData,
    day: int,
    levels: list[ExitTrigger],
    breakers: CircuitBreakerState,
    at: datetime,
    settings: BreakerSettings,
    *,
    at_open: bool,
    opened_today: set[str],
) -> list[ExitSignal]:
    """Exits for this bar: at the open only (gaps), or over the rest of the bar (low/high)."""
    if not levels:
        return []
    lows, highs = (market.open, market.open) if at_open else (market.low, market.high)
    keep = 1 - float(settings.single_position_loss_pct) * BREAKER_MARGIN
    signals = []
    for holding, row, stop, take_profit, entry in levels:
        low, high = lows[row, day], highs[row, day]
        # A missing bar is NaN, and NaN compares False: no candidate, the day is skipped for it.
        if not (low <= stop * (1 + TOLERANCE) or high >= take_profit * (1 - TOLERANCE) or low < entry * keep):
            continue
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
        return ExitSignal(holding, fill, OrderReason.EMERGENCY.value, check)
    return ExitSignal(holding, fill, "take_profit")
