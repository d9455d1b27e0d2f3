"""Where an order or an exit fills on a daily bar (the fill model of `FillModel`, issue 8).

- A market order due on a bar fills at its open, moved by the slippage against the trader.
- A protective exit is found by walking the bar the pessimistic way: first the open (a gap
  through a level fills at the open, good or bad), then down to the low (the stop or the
  single-position breaker level, whichever the price meets first on its way down, fills at
  that level), and only then up to the high (the take-profit fills at its level). So when one
  bar touches both, the stop comes first.

Whether a level has been crossed is the decision core's question (`check_price_crossing`,
`check_single_position`); this module only says at which price the crossing fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.trading.backtest.config import FillModel
from services.trading.core.fill_application import PRICE_STEP

BUY, SELL = "buy", "sell"


def market_fill_price(open_price: Decimal, side: str, model: FillModel) -> Decimal:
    """The open moved `slippage_bps` against the trader (buys pay more, sells get less), on
    the price step, as the paper broker fills."""
    moved = open_price * (1 + model.slippage) if side == BUY else open_price * (1 - model.slippage)
    return moved.quantize(PRICE_STEP, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class ExitLevels:
    """A position's protective levels on one bar. `breaker` is the price below which the
    single-position breaker fires (None when not tested this bar)."""

    stop: Decimal
    take_profit: Decimal
    breaker: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitFill:
    kind: str  # "stop" | "breaker" | "take_profit"
    price: Decimal  # before slippage
    at_open: bool


def exit_on_bar(
    levels: ExitLevels,
    open_: Decimal,
    *,
    stop_hit: bool,
    breaker_hit: bool,
    take_profit_hit: bool,
    include_open: bool = True,
) -> ExitFill | None:
    """Which protective exit fills on this bar and at what price, given which levels the core
    found crossed somewhere on the bar. `include_open=False` for the bar a position was
    opened on: it was bought at that open, so only the rest of the bar can take it out."""
    if include_open:
        if stop_hit and open_ <= levels.stop:
            return ExitFill("stop", open_, True)
        if breaker_hit and levels.breaker is not None and open_ < levels.breaker:
            return ExitFill("breaker", open_, True)
        if take_profit_hit and open_ >= levels.take_profit:
            return ExitFill("take_profit", open_, True)
    # Down first: the higher of the two downside levels is met first on the way down.
    downside = []
    if stop_hit:
        downside.append((min(levels.stop, open_), "stop"))
    if breaker_hit and levels.breaker is not None:
        downside.append((min(levels.breaker, open_), "breaker"))
    if downside:
        price, kind = max(downside, key=lambda item: (item[0], item[1] == "stop"))
        return ExitFill(kind, price, False)
    if take_profit_hit:
        return ExitFill("take_profit", max(levels.take_profit, open_), False)
    return None
