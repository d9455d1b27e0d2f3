"""Portfolio rebalancing: sell proposals that bring the book back within its limits
(seed task 15.1, requirements 8.1-8.6, docs/contracts.md sections 5-6).

Three rules, applied in this order, each on the quantities left by the one before:
1. Position limit: a position worth more than `max_position_pct` of the Active Pool (the
   base new positions are sized on) is trimmed back to the limit, no further.
2. Sector limit: a sector worth more than `max_sector_pct` of total value (the base of the
   sizer's sector cap) is trimmed lowest-confidence position first, each sold whole before
   the next is touched, the last one only as far as needed.
3. Open-position limit: beyond `max_open_positions` (default 10), the lowest-confidence
   positions are closed until the limit holds.

Sells of whole shares are rounded *up*, so that after the sell the limit holds; fractional
mode rounds up to the share step. Selling for cash leaves total value unchanged, so limits
are measured on today's values throughout. Outside the trading window or while a circuit
breaker is active the plan is deferred with the reason, and no sells are proposed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from quicktions import Fraction

from services.shared.schemas import OrderReason
from services.trading.core.models import ZERO, OpenPosition, PortfolioState, RiskTierConfig

POSITION_LIMIT = "position_limit"
SECTOR_LIMIT = "sector_limit"
OPEN_POSITION_LIMIT = "open_position_limit"


@dataclass(frozen=True, slots=True)
class RebalanceSettings:
    max_open_positions: int = 10
    fractional_shares: bool = False
    fractional_share_step: Decimal = Decimal("0.0001")

    @property
    def step(self) -> Decimal:
        return self.fractional_share_step if self.fractional_shares else Decimal(1)


@dataclass(frozen=True, slots=True)
class RebalanceStep:
    """One rule's share of a sell, with the reason that rule gives."""

    rule: str
    quantity: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class SellProposal:
    """One sell order to propose for a ticker, all rules' steps merged."""

    ticker: str
    quantity: Decimal
    reason: str
    steps: tuple[RebalanceStep, ...]
    order_reason: OrderReason = OrderReason.REBALANCE


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    proposals: tuple[SellProposal, ...]
    deferred_reason: str | None = None

    @property
    def deferred(self) -> bool:
        return self.deferred_reason is not None


def _sell_to_reduce(excess: Fraction, price: Decimal, held: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of `step` shares whose value covers `excess`, at most `held`."""
    steps = math.ceil(excess / (Fraction(price) * Fraction(step)))
    return min(held, steps * step)


class _Book:
    """Working quantities during one evaluation, and the steps taken."""

    def __init__(self, positions: tuple[OpenPosition, ...]) -> None:
        self.positions = [p for p in positions if p.current_price > 0 and p.quantity > 0]
        self.left = {i: p.quantity for i, p in enumerate(self.positions)}
        self.steps: dict[str, list[RebalanceStep]] = defaultdict(list)

    def value(self, i: int) -> Fraction:
        return Fraction(self.left[i]) * Fraction(self.positions[i].current_price)

    def sell(self, i: int, quantity: Decimal, rule: str, reason: str) -> None:
        if quantity <= 0:
            return
        self.left[i] -= quantity
        self.steps[self.positions[i].ticker].append(RebalanceStep(rule, quantity, reason))

    def open_indices(self) -> list[int]:
        return [i for i, q in self.left.items() if q > 0]


def _by_confidence(book: _Book, indices: list[int]) -> list[int]:
    # Lowest confidence first; ties go to the smaller holding, then the ticker, so the
    # choice is deterministic and disturbs the book least.
    return sorted(
        indices, key=lambda i: (book.positions[i].signal_confidence, book.value(i), book.positions[i].ticker)
    )


def _trim_positions(book: _Book, tier: RiskTierConfig, active_pool: Decimal, step: Decimal) -> None:
    limit = Fraction(tier.max_position_pct) * Fraction(active_pool)
    for i in book.open_indices():
        value = book.value(i)
        if value > limit:
            position = book.positions[i]
            quantity = _sell_to_reduce(value - limit, position.current_price, book.left[i], step)
            book.sell(
                i,
                quantity,
                POSITION_LIMIT,
                f"{position.ticker} is worth ${float(value):,.2f}, over {tier.max_position_pct:%} of the "
                f"Active Pool (${float(limit):,.2f}): trimmed back to the limit",
            )


def _trim_sectors(book: _Book, tier: RiskTierConfig, total_value: Decimal, step: Decimal) -> None:
    limit = Fraction(tier.max_sector_pct) * Fraction(total_value)
    sectors: dict[str, list[int]] = defaultdict(list)
    for i in book.open_indices():
        sectors[book.positions[i].sector].append(i)
    for sector in sorted(sectors):
        excess = sum((book.value(i) for i in sectors[sector]), Fraction(0)) - limit
        for i in _by_confidence(book, sectors[sector]):
            if excess <= 0:
                break
            position = book.positions[i]
            quantity = _sell_to_reduce(excess, position.current_price, book.left[i], step)
            excess -= Fraction(quantity) * Fraction(position.current_price)
            book.sell(
                i,
                quantity,
                SECTOR_LIMIT,
                f"sector {sector!r} is over {tier.max_sector_pct:%} of portfolio value "
                f"(${float(limit):,.2f}); {position.ticker} has the lowest confidence left "
                f"({position.signal_confidence})",
            )


def _enforce_open_limit(book: _Book, max_open: int) -> None:
    open_now = book.open_indices()
    excess = len(open_now) - max_open
    for i in _by_confidence(book, open_now)[: max(excess, 0)]:
        position = book.positions[i]
        book.sell(
            i,
            book.left[i],
            OPEN_POSITION_LIMIT,
            f"{len(open_now)} positions open, limit {max_open}: closing {position.ticker}, among the "
            f"lowest confidence ({position.signal_confidence})",
        )


def evaluate(
    portfolio: PortfolioState,
    tier: RiskTierConfig,
    *,
    within_trading_window: bool,
    circuit_breaker_active: bool,
    settings: RebalanceSettings | None = None,
) -> RebalancePlan:
    """Sell proposals, tagged `rebalance`, that bring the portfolio within its limits."""
    settings = settings or RebalanceSettings()
    if circuit_breaker_active:
        return RebalancePlan((), "circuit breaker active: rebalancing deferred until it resolves")
    if not within_trading_window:
        return RebalancePlan((), "outside the trading window: rebalancing deferred to the next window")
    book = _Book(portfolio.positions)
    if portfolio.active_pool > 0:
        _trim_positions(book, tier, portfolio.active_pool, settings.step)
    if portfolio.total_value > 0:
        _trim_sectors(book, tier, portfolio.total_value, settings.step)
    _enforce_open_limit(book, settings.max_open_positions)
    proposals = tuple(
        SellProposal(
            ticker, sum((s.quantity for s in steps), ZERO), "; ".join(s.reason for s in steps), tuple(steps)
        )
        for ticker, steps in book.steps.items()
    )
    return RebalancePlan(proposals)
