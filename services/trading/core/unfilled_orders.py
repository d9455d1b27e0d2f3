"""The account as a decision must see it: what is held plus the orders decided but not filled.

Two buys decided in one pass must not spend the same cash, and a sell must not sell shares a
sale already on its way will take. So before a decision, every unfilled order is counted as if
it had filled at the current price: a buy spends cash and adds shares (with the stop its plan
sets), a sell takes shares away. A sell is sized from shares the broker holds, so for a sell
(`pending_buys=False`) unfilled buys are left out.

The live engine's unfilled orders are its outbox's; the backtester's are its later tranches
and sells due at a later instant. Both drivers call this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from services.trading.core.fill_application import StopPlan
from services.trading.core.models import ZERO, OpenPosition, PortfolioState


@dataclass(frozen=True, slots=True)
class UnfilledOrder:
    ticker: str
    side: str  # "buy" | "sell"
    quantity: Decimal
    sector: str = "Unknown"
    plan: StopPlan | None = None  # a buy's stop plan


def with_unfilled(
    positions: Sequence[OpenPosition],
    cash: Decimal,
    reserve: Decimal,
    orders: Iterable[UnfilledOrder],
    prices: Mapping[str, Decimal],
    *,
    pending_buys: bool = True,
) -> PortfolioState:
    """The held `positions` with every unfilled order counted as filled at `prices` (a buy
    without a price is left out: it cannot be valued)."""
    book = {p.ticker: p for p in positions}
    for order in orders:
        position = book.get(order.ticker)
        if order.side == "sell":
            if position is not None:
                book[order.ticker] = replace(position, quantity=max(position.quantity - order.quantity, ZERO))
            continue
        price = prices.get(order.ticker)
        if price is None or not pending_buys:
            continue
        cash -= order.quantity * price
        book[order.ticker] = _as_filled(position, order, price)
    return PortfolioState(tuple(p for p in book.values() if p.quantity > 0), cash, reserve)


def account_with_unfilled(
    portfolio: PortfolioState,
    orders: Sequence[UnfilledOrder],
    prices: Mapping[str, Decimal],
    *,
    pending_buys: bool = True,
) -> PortfolioState:
    """`with_unfilled` of a whole account. When no order counts (every one a buy left out, and
    no empty position to drop) that is the account itself, returned as it is with the figures
    it has summed already: a backtest asks before every decision, mostly with only later
    tranches on their way and a sell to decide."""
    held = {p.ticker for p in portfolio.positions}
    counts = any(
        o.ticker in held if o.side == "sell" else pending_buys and prices.get(o.ticker) is not None
        for o in orders
    )
    if not counts and all(p.quantity > 0 for p in portfolio.positions):
        return portfolio
    return with_unfilled(
        portfolio.positions, portfolio.cash, portfolio.reserve_pool, orders, prices, pending_buys=pending_buys
    )


def _as_filled(position: OpenPosition | None, order: UnfilledOrder, price: Decimal) -> OpenPosition:
    """A decided buy counted as if filled at `price`, with the stop its plan sets."""
    if position is None:
        plan = order.plan
        distance = plan.atr * plan.atr_multiplier if plan else ZERO
        return OpenPosition(
            order.ticker,
            order.quantity,
            price,
            price,
            order.sector,
            price - distance,
            price + distance * plan.reward_risk_ratio if plan else price,
            plan.confidence if plan else ZERO,
            plan.is_micro_trade if plan else False,
        )
    total = position.quantity + order.quantity
    entry = (position.entry_price * position.quantity + price * order.quantity) / total
    return replace(position, quantity=total, entry_price=entry)
