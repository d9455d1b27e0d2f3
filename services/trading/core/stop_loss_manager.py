"""When to get out: ATR-based stops and take-profits, trailing, tightening (seed task 6.1).

docs/contracts.md section 6: `stop = entry - ATR14 * mult`, `take_profit = entry + (entry - stop) *
reward_risk`; once price has moved more than 50% of the way to take-profit the stop goes to
entry; earnings within 3 sessions use 0.7x the ATR multiplier and a high-severity macro
event 0.5x; levels are re-evaluated when ATR moves more than 10%; above 80% of
max_portfolio_heat the lowest-confidence positions' stops are tightened first.

One rule holds everywhere here: a stop never moves down. Widening a stop after entry would
raise the risk the position was sized for. Functions return new `StopLevels` (or records)
for the caller to persist; nothing is stored here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from services.trading.core.models import ZERO, OpenPosition, StopLevels, StopTrigger
from services.trading.core.trading_window import current_session_open, require_aware

ATR_PERIOD = 14
# The bars an ATR(14) is read from, live and in backtests alike: enough for Wilder's smoothing
# to settle well past its 15-bar minimum, so both see the same value.
ATR_LOOKBACK_BARS = 60


@dataclass(frozen=True, slots=True)
class Bar:
    """One price bar; ATR needs only high, low and close."""

    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True, slots=True)
class StopSettings:
    atr_period: int = 14
    atr_change_threshold: Decimal = Decimal("0.10")
    min_reevaluation_interval: timedelta = timedelta(minutes=5)
    trailing_activation_fraction: Decimal = Decimal("0.5")
    earnings_multiplier_factor: Decimal = Decimal("0.7")
    high_severity_multiplier_factor: Decimal = Decimal("0.5")
    heat_tightening_threshold: Decimal = Decimal("0.8")
    heat_tightening_factor: Decimal = Decimal("0.5")
    price_stale_after: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class StopAdjustment:
    """A stop moved by proactive heat tightening, to persist and show in the trace."""

    ticker: str
    previous_stop: Decimal
    new_stop: Decimal
    reason: str


def average_true_range(bars: Sequence[Bar], period: int = 14) -> Decimal:
    """ATR with Wilder's smoothing: the first value is the simple mean of the first `period`
    true ranges, then ATR_t = (ATR_{t-1} * (period - 1) + TR_t) / period.

    True range needs the previous close, so the first bar only provides that close and
    `period + 1` bars are the minimum. Bars are oldest first.
    """
    _check_atr_input(len(bars), period)
    ranges = [
        max(high - low, abs(high - previous), abs(low - previous))
        for previous, high, low in zip(
            [b.close for b in bars[:-1]], [b.high for b in bars[1:]], [b.low for b in bars[1:]]
        )
    ]
    return _wilder(sum(ranges[:period], ZERO), ranges[period:], period)


def average_true_range_of_units(
    highs: Sequence[int], lows: Sequence[int], closes: Sequence[int], period: int = 14
) -> Decimal:
    """`average_true_range` of bars whose prices are whole numbers (e.g. prices quoted to k
    decimals, in units of 10^-k dollars), given as columns, oldest first: the fast path for
    callers holding bars as arrays (the backtester).

    The same rule to the same digits: a true range of whole numbers is exact either way (Python
    integers here, Decimals there), as is the sum seeding the mean; the smoothing is the same
    Decimal arithmetic. Accepts lists or integer numpy arrays.
    """
    _check_atr_input(len(highs), period)
    if not isinstance(highs, list):  # numpy: the true ranges of all bars at once, exact in int64
        import numpy as np

        h, lo, c = (np.asarray(a, dtype=np.int64) for a in (highs, lows, closes))
        previous = c[:-1]
        ranges = np.maximum(
            h[1:] - lo[1:], np.maximum(np.abs(h[1:] - previous), np.abs(lo[1:] - previous))
        ).tolist()
    else:
        ranges = [
            max(high - low, abs(high - previous), abs(low - previous))
            for previous, high, low in zip(closes[:-1], highs[1:], lows[1:])
        ]
    return average_of_true_ranges(ranges, period)


def average_of_true_ranges(ranges: Sequence[int], period: int = 14) -> Decimal:
    """Wilder's smoothing of whole-number true ranges, oldest first: the second half of
    `average_true_range_of_units`, for a caller that keeps each ticker's true ranges already
    (the backtester computes them once per ticker and hands over a window's)."""
    _check_atr_input(len(ranges) + 1, period)
    return _wilder(ZERO + sum(ranges[:period]), ranges[period:], period)


def _check_atr_input(bars: int, period: int) -> None:
    if period < 1:
        raise ValueError(f"ATR period must be positive, got {period}")
    if bars < period + 1:
        raise ValueError(f"ATR({period}) needs at least {period + 1} bars, got {bars}")


def _wilder(seed_sum: Decimal, later_ranges: Sequence[Decimal | int], period: int) -> Decimal:
    # The whole numbers as Decimals once (exact, so the same digits), not at every step.
    weight, divisor = Decimal(period - 1), Decimal(period)
    atr = seed_sum / divisor
    for true_range in later_ranges:
        atr = (atr * weight + true_range) / divisor
    return atr


def effective_atr_multiplier(
    base_multiplier: Decimal,
    *,
    earnings_soon: bool = False,
    high_severity_event: bool = False,
    settings: StopSettings | None = None,
) -> Decimal:
    """The tier's ATR multiplier after tightening. When both conditions hold the tighter
    factor applies (0.5x, not 0.35x): each rule states the multiplier to use, and the
    stricter one satisfies both."""
    s = settings or StopSettings()
    factors = [Decimal(1)]
    if earnings_soon:
        factors.append(s.earnings_multiplier_factor)
    if high_severity_event:
        factors.append(s.high_severity_multiplier_factor)
    return base_multiplier * min(factors)


def compute_initial_levels(
    entry_price: Decimal, atr: Decimal, atr_multiplier: Decimal, reward_risk_ratio: Decimal, now: datetime
) -> StopLevels:
    """Stop and take-profit for a new position (docs/contracts.md section 6)."""
    require_aware(now, "now")
    if entry_price <= 0 or atr <= 0 or atr_multiplier <= 0 or reward_risk_ratio <= 0:
        raise ValueError(
            f"entry {entry_price}, ATR {atr}, multiplier {atr_multiplier} and reward/risk "
            f"{reward_risk_ratio} must all be positive"
        )
    stop = entry_price - atr * atr_multiplier
    if stop <= 0:
        raise ValueError(
            f"ATR {atr} x {atr_multiplier} puts the stop at {stop}, at or below zero for entry "
            f"{entry_price}: the stop could never fire"
        )
    return StopLevels(
        stop_loss_price=stop,
        take_profit_price=entry_price + (entry_price - stop) * reward_risk_ratio,
        trailing_stop_active=False,
        atr_value=atr,
        atr_multiplier=atr_multiplier,
        reward_risk_ratio=reward_risk_ratio,
        last_updated=now,
    )


def atr_moved(levels: StopLevels, new_atr: Decimal, settings: StopSettings | None = None) -> bool:
    """True when ATR changed by more than the threshold (10%) relative to the stored ATR."""
    s = settings or StopSettings()
    return abs(new_atr - levels.atr_value) > s.atr_change_threshold * levels.atr_value


def re_evaluate_levels(
    levels: StopLevels,
    entry_price: Decimal,
    new_atr: Decimal,
    now: datetime,
    *,
    atr_multiplier: Decimal | None = None,
    settings: StopSettings | None = None,
) -> StopLevels | None:
    """New levels when ATR moved > 10% (at most once per `min_reevaluation_interval`) or the
    multiplier changed (earnings, macro event: applied at once); None when nothing is due.

    The stop only ratchets up. Take-profit keeps `entry + (entry - stop) * reward_risk`
    unless the trailing stop is active, when it stays where it was.
    """
    s = settings or StopSettings()
    require_aware(now, "now")
    multiplier = levels.atr_multiplier if atr_multiplier is None else atr_multiplier
    multiplier_changed = multiplier != levels.atr_multiplier
    atr_due = atr_moved(levels, new_atr, s) and now - levels.last_updated >= s.min_reevaluation_interval
    if not (multiplier_changed or atr_due):
        return None
    stop = max(levels.stop_loss_price, entry_price - new_atr * multiplier)
    take_profit = (
        levels.take_profit_price
        if levels.trailing_stop_active
        else entry_price + (entry_price - stop) * levels.reward_risk_ratio
    )
    return replace(
        levels,
        stop_loss_price=stop,
        take_profit_price=take_profit,
        atr_value=new_atr,
        atr_multiplier=multiplier,
        last_updated=now,
    )


def apply_trailing_stop(
    levels: StopLevels,
    entry_price: Decimal,
    current_price: Decimal,
    now: datetime,
    settings: StopSettings | None = None,
) -> StopLevels | None:
    """Move the stop to entry (breakeven) once price has covered more than 50% of the way
    from entry to take-profit; None when it is not due or already active."""
    s = settings or StopSettings()
    if levels.trailing_stop_active:
        return None
    if current_price - entry_price <= s.trailing_activation_fraction * (
        levels.take_profit_price - entry_price
    ):
        return None
    return replace(
        levels,
        stop_loss_price=max(levels.stop_loss_price, entry_price),
        trailing_stop_active=True,
        last_updated=require_aware(now, "now"),
    )


def check_price_crossing(ticker: str, levels: StopLevels, price: Decimal) -> StopTrigger | None:
    """A sell trigger when price is at or through the stop (a gap far below it included) or
    at or above take-profit."""
    if price <= levels.stop_loss_price:
        kind = "trailing_stop" if levels.trailing_stop_active else "stop_loss"
        return StopTrigger(ticker, kind, price, levels.stop_loss_price)
    if price >= levels.take_profit_price:
        return StopTrigger(ticker, "take_profit", price, levels.take_profit_price)
    return None


def check_price_crossings(
    levels_by_ticker: Mapping[str, StopLevels], prices: Mapping[str, Decimal]
) -> tuple[StopTrigger, ...]:
    """Triggers for every ticker with a price; tickers without one go to
    `check_price_unavailable` instead."""
    triggers = (
        check_price_crossing(t, levels, prices[t]) for t, levels in levels_by_ticker.items() if t in prices
    )
    return tuple(trigger for trigger in triggers if trigger is not None)


def check_price_unavailable(
    ticker: str, last_price_at: datetime | None, now: datetime, settings: StopSettings | None = None
) -> StopTrigger | None:
    """Close a position whose price has been missing for more than 15 minutes of market
    time. Staleness counts from the later of the last price and today's open, so an
    overnight gap does not close everything at 09:31."""
    s = settings or StopSettings()
    opened = current_session_open(now)
    if opened is None:
        return None
    since = opened if last_price_at is None else max(require_aware(last_price_at, "last_price_at"), opened)
    if now - since > s.price_stale_after:
        return StopTrigger(ticker, "price_unavailable", None, None)
    return None


def tighten_for_heat(
    positions: Sequence[OpenPosition],
    total_value: Decimal,
    max_portfolio_heat: Decimal,
    settings: StopSettings | None = None,
) -> tuple[StopAdjustment, ...]:
    """Above 80% of max_portfolio_heat, halve the stop distance of the lowest-confidence
    positions first, one by one, until heat is back at or below 80% (docs/contracts.md section 6).

    Ties in confidence go by ticker so the order is reproducible."""
    s = settings or StopSettings()
    if total_value <= 0:
        return ()
    target = s.heat_tightening_threshold * max_portfolio_heat
    risk = sum((p.risk_dollars for p in positions), ZERO)
    adjustments: list[StopAdjustment] = []
    for p in sorted(positions, key=lambda p: (p.signal_confidence, p.ticker)):
        if risk / total_value <= target:
            break
        if p.risk_dollars <= 0:
            continue
        new_stop = p.entry_price - (p.entry_price - p.stop_loss_price) * s.heat_tightening_factor
        risk -= p.risk_dollars - p.quantity * (p.entry_price - new_stop)
        adjustments.append(
            StopAdjustment(
                p.ticker,
                p.stop_loss_price,
                new_stop,
                f"portfolio heat above {s.heat_tightening_threshold} x max {max_portfolio_heat}: "
                f"stop distance of lowest-confidence position ({p.signal_confidence}) "
                f"cut by {s.heat_tightening_factor}",
            )
        )
    return tuple(adjustments)


def levels_after_add(
    levels: StopLevels,
    held_quantity: Decimal,
    held_entry: Decimal,
    fill_quantity: Decimal,
    fill_price: Decimal,
    atr: Decimal,
    atr_multiplier: Decimal,
    reward_risk_ratio: Decimal,
    now: datetime,
) -> tuple[Decimal, StopLevels]:
    """A later tranche or an add-on: the entry becomes the average, and the levels follow it
    (`compute_initial_levels` at the new entry) except that a stop never moves down and an
    active trailing stop keeps its take-profit. Returns (new average entry, new levels)."""
    entry = (held_entry * held_quantity + fill_price * fill_quantity) / (held_quantity + fill_quantity)
    fresh = compute_initial_levels(entry, atr, atr_multiplier, reward_risk_ratio, now)
    take_profit = levels.take_profit_price if levels.trailing_stop_active else fresh.take_profit_price
    # Built directly rather than by dataclasses.replace: every simulated tranche comes here.
    return entry, StopLevels(
        max(levels.stop_loss_price, fresh.stop_loss_price),
        take_profit,
        levels.trailing_stop_active,
        levels.atr_value,
        levels.atr_multiplier,
        levels.reward_risk_ratio,
        now,
    )
