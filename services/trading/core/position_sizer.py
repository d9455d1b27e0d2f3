"""How much to buy: confidence-scaled sizing with every risk adjustment (seed task 4.1).

docs/contracts.md section 6:
    raw_pct = base_allocation_pct * (confidence / min_confidence) * multiplier,
    pct = min(raw_pct, max_position_pct), dollars = min(active_pool * pct, absolute_position_cap),
then the sector cap, whole shares rounded down, and the portfolio-heat limit. `multiplier` is
the product of the correlation, diversification and earnings factors. Every step that changes
the size is returned as a `SizingAdjustment`, and every rejection names its reason, so the
decision trace shows the whole arithmetic.

The arithmetic runs on exact fractions and converts to `Decimal` only for the result: a
28-digit `Decimal` quotient such as `confidence / min_confidence` can round a share count
that should be exactly 5 down to 4.999... and buy one share fewer, or the other way round.
The fractions are `quicktions.Fraction`: the standard library's `Fraction`, the same exact
numbers, compiled (a sizing does some 20 operations on them, and a backtest thousands of sizings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from quicktions import Fraction

from services.shared.schemas import OrderSide
from services.trading.core.models import (
    ZERO,
    OpenPosition,
    PortfolioState,
    PositionSizeResult,
    RiskTierConfig,
    SizingAdjustment,
)
from services.trading.core.quote import price_text


class CorrelationSource(Protocol):
    """What the sizer needs from the correlation matrix (services/trading/core/correlation.py)."""

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        """Market-value-weighted mean correlation of `candidate` with the open positions;
        0.0 when there are none or the pairs are unknown."""
        ...


@dataclass(frozen=True, slots=True)
class SizingSettings:
    """Engine-wide sizing limits (docs/contracts.md section 5 defaults)."""

    absolute_position_cap: Decimal = Decimal("2500")
    active_pool_minimum: Decimal = Decimal("100")
    fractional_shares: bool = False
    fractional_share_step: Decimal = Decimal("0.0001")
    correlation_reduce_above: Decimal = Decimal("0.5")
    correlation_reject_above: Decimal = Decimal("0.8")
    diversification_bonus: Decimal = Decimal("1.2")
    diversification_sector_count: int = 3
    earnings_reduce_within_sessions: int = 3
    earnings_reject_within_sessions: int = 1
    earnings_factor: Decimal = Decimal("0.5")

    @property
    def share_step(self) -> Decimal:
        """The smallest quantity bought: one share, or a fraction when fractional shares are on."""
        return self.fractional_share_step if self.fractional_shares else Decimal(1)


@dataclass(frozen=True, slots=True)
class SizingRequest:
    """One buy candidate. `stop_distance` is the per-share distance from entry to the
    initial stop (e.g. ATR14 * multiplier), which sets the entry's own portfolio heat.
    `sessions_until_earnings` comes from `trading_window.sessions_until` (None: no upcoming
    earnings known)."""

    ticker: str
    sector: str
    confidence: Decimal | float
    current_price: Decimal
    stop_distance: Decimal
    sessions_until_earnings: int | None = None


def active_pool_gate(side: OrderSide | str, active_pool: Decimal, settings: SizingSettings) -> str | None:
    """Reason a new order is blocked by the Active Pool minimum, or None. Sells are never
    blocked: getting out must always be possible (seed property 7)."""
    if OrderSide(side) is OrderSide.SELL:
        return None
    if active_pool < settings.active_pool_minimum:
        return (
            f"Active Pool ${active_pool} is below the ${settings.active_pool_minimum} minimum; "
            "new entries are halted until it recovers"
        )
    return None


@dataclass(frozen=True, slots=True)
class _Book:
    """The portfolio figures the sizing steps read, computed once per evaluation (the
    PortfolioState properties re-sum every position on each access)."""

    positions: tuple[OpenPosition, ...]
    total_value: Decimal
    active_pool: Decimal
    risk_dollars: Decimal
    sector_value: Mapping[str, Decimal]  # read only: the portfolio's own
    spendable_cash: Decimal

    @classmethod
    def of(cls, portfolio: PortfolioState) -> _Book:
        # The portfolio's own figures (summed once per state, in the same order as here before).
        # The Reserve Pool is kept in cash: only the cash beyond it may buy anything.
        return cls(
            portfolio.positions,
            portfolio.total_value,
            portfolio.active_pool,
            portfolio.risk_dollars,
            portfolio.sector_exposure_read_only,
            portfolio.cash - portfolio.reserve_pool,
        )

    def held_value(self, ticker: str) -> Decimal:
        return sum((p.market_value for p in self.positions if p.ticker == ticker), ZERO)


class _Rejected(Exception):
    """Internal: carries a rejection reason out of the sizing steps."""


def _exact(value: Decimal | float | int) -> Fraction:
    """Exact rational value. A float is read as its shortest decimal form (0.65 -> 65/100),
    the number a person saw in the database, so a confidence of 0.65 meets a 0.65 minimum."""
    try:
        return _exact_cached(value)
    except TypeError:  # unhashable (a signalling NaN): Fraction reports it as it always did
        return _exact_uncached(value)


def _exact_uncached(value: Decimal | float | int) -> Fraction:
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    return Fraction(value)


# The same few settings, tier limits and prices are read on every sizing (a backtest sizes
# thousands of times); a Fraction is immutable and its value depends only on the input's value
# and type, so a remembered one is the same number. Typed: 0.65 and Decimal("0.65") differ.
_exact_cached = lru_cache(maxsize=4096, typed=True)(_exact_uncached)


def _dec(value: Fraction, places: int = 10) -> Decimal:
    """A readable Decimal for traces and results (not used for further arithmetic)."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))


def _check_inputs(request: SizingRequest, book: _Book) -> Fraction:
    confidence = request.confidence
    if isinstance(confidence, float) and not math.isfinite(confidence):
        raise _Rejected(f"confidence {confidence} is not a number")
    if isinstance(confidence, Decimal) and not confidence.is_finite():
        raise _Rejected(f"confidence {confidence} is not a number")
    if not 0 <= confidence <= 1:
        raise _Rejected(f"confidence {confidence} is outside [0, 1]")
    if not request.current_price > 0:
        raise _Rejected(f"price {request.current_price} of {request.ticker} is not positive")
    if request.stop_distance < 0:
        raise _Rejected(f"stop distance {request.stop_distance} is negative")
    if book.total_value <= 0:
        raise _Rejected(f"portfolio value {book.total_value} is not positive")
    return _exact(confidence)


def below_min_confidence(confidence: Decimal | float, tier: RiskTierConfig) -> str | None:
    """Why a buy at `confidence` (a number in [0, 1]) gets no allocation in `tier`, or None:
    below the tier's minimum confidence nothing is bought (seed task 4.1). The decision core
    asks first, before anything costlier; the sizer asks again for callers that size alone."""
    if _exact(confidence) < _exact(tier.min_confidence):
        return f"confidence {confidence} is below the {tier.name} tier's minimum {tier.min_confidence}"
    return None


class PositionSizer:
    """Sizes buy candidates against one correlation source and one set of limits."""

    def __init__(self, correlations: CorrelationSource, settings: SizingSettings | None = None) -> None:
        self._correlations = correlations
        self._settings = settings or SizingSettings()

    @property
    def settings(self) -> SizingSettings:
        return self._settings

    def compute(
        self, request: SizingRequest, portfolio: PortfolioState, tier: RiskTierConfig
    ) -> PositionSizeResult:
        """Size a buy of `request.ticker`, or reject it with the reason (seed task 4.1)."""
        trace: list[SizingAdjustment] = []
        book = _Book.of(portfolio)
        try:
            gate = active_pool_gate(OrderSide.BUY, book.active_pool, self._settings)
            if gate:
                raise _Rejected(gate)
            confidence = _check_inputs(request, book)
            below = below_min_confidence(request.confidence, tier)
            if below:
                raise _Rejected(below)
            multiplier = self._multiplier(request, book, trace)
            dollars = self._dollars(confidence, multiplier, book, tier, trace)
            dollars = self._position_limit(request, dollars, book, tier, trace)
            dollars = self._sector_cap(request, dollars, book, tier, trace)
            dollars = self._cash_limit(dollars, book, trace)
            shares = self._shares(request, dollars, trace)
            self._heat_check(request, shares, book, tier)
        except _Rejected as rejection:
            return PositionSizeResult(
                ZERO, ZERO, ZERO, tuple(trace), rejected=True, rejection_reason=str(rejection)
            )
        spent = shares * request.current_price
        return PositionSizeResult(
            dollar_amount=spent,
            share_quantity=shares,
            allocation_pct=_dec(_exact(spent) / _exact(book.active_pool)),
            adjustments=tuple(trace),
        )

    def fit_addition(
        self, request: SizingRequest, quantity: Decimal, portfolio: PortfolioState, tier: RiskTierConfig
    ) -> PositionSizeResult:
        """How much of an order of `quantity` already decided (a later tranche, issue 13) may be
        bought at `request.current_price` now: the steps of `compute` on a fixed size. It is cut
        as `compute` cuts a new entry, to the position limit, the sector cap and the cash beyond
        the Reserve Pool (in share steps); it is rejected where `compute` rejects: the Active
        Pool minimum, the inputs and minimum confidence, earnings or correlation, nothing left
        after the cuts, or portfolio heat with `request.stop_distance`. Never above `quantity`."""
        trace: list[SizingAdjustment] = []
        book = _Book.of(portfolio)
        try:
            gate = active_pool_gate(OrderSide.BUY, book.active_pool, self._settings)
            if gate:
                raise _Rejected(gate)
            _check_inputs(request, book)
            below = below_min_confidence(request.confidence, tier)
            if below:
                raise _Rejected(below)
            # Its factors size a new entry, not a decided one: only its rejections apply here.
            self._multiplier(request, book, [])
            dollars = _exact(quantity) * _exact(request.current_price)
            dollars = self._position_limit(request, dollars, book, tier, trace)
            dollars = self._sector_cap(request, dollars, book, tier, trace)
            dollars = self._cash_limit(dollars, book, trace)
            shares = self._shares(request, dollars, []) if trace else quantity
            self._heat_check(request, shares, book, tier)
        except _Rejected as rejection:
            return PositionSizeResult(
                ZERO, ZERO, ZERO, tuple(trace), rejected=True, rejection_reason=str(rejection)
            )
        spent = shares * request.current_price
        return PositionSizeResult(spent, shares, _dec(_exact(spent) / _exact(book.active_pool)), tuple(trace))

    # -- the multiplier: earnings, correlation, diversification -------------------------

    def _multiplier(self, request: SizingRequest, book: _Book, trace: list[SizingAdjustment]) -> Fraction:
        s = self._settings
        multiplier = Fraction(1)
        sessions = request.sessions_until_earnings
        if sessions is not None and sessions <= s.earnings_reject_within_sessions:
            raise _Rejected(
                f"earnings in {sessions} trading session(s): no entries within "
                f"{s.earnings_reject_within_sessions} session of earnings"
            )
        if sessions is not None and sessions <= s.earnings_reduce_within_sessions:
            multiplier *= _exact(s.earnings_factor)
            trace.append(
                SizingAdjustment(
                    "earnings_proximity",
                    s.earnings_factor,
                    f"earnings in {sessions} trading sessions (within "
                    f"{s.earnings_reduce_within_sessions}): size cut",
                )
            )
        multiplier *= self._correlation_factor(request, book, trace)
        held = book.sector_value.keys()
        if len(held) < s.diversification_sector_count and request.sector not in held:
            multiplier *= _exact(s.diversification_bonus)
            trace.append(
                SizingAdjustment(
                    "diversification_bonus",
                    s.diversification_bonus,
                    f"portfolio holds {len(held)} sector(s) (< {s.diversification_sector_count})"
                    f" and {request.sector!r} is not among them",
                )
            )
        return multiplier

    def _correlation_factor(
        self, request: SizingRequest, book: _Book, trace: list[SizingAdjustment]
    ) -> Fraction:
        s = self._settings
        raw = self._correlations.get_portfolio_correlation(request.ticker, book.positions)
        below_both = min(float(s.correlation_reduce_above), float(s.correlation_reject_above))
        if math.isfinite(raw) and raw < below_both:
            # Below both thresholds as a float, so below them read exactly too: the float's
            # shortest decimal lies within half a unit in the last place of it, and each
            # threshold rounds to its own float. Most candidates end here, without the exact
            # reading of a float that is new every time.
            return Fraction(1)
        refusal = None
        if not math.isfinite(raw):
            refusal = f"correlation of {request.ticker} with the portfolio is not a number ({raw})"
        elif _exact(raw) > _exact(s.correlation_reject_above):
            refusal = (
                f"weighted correlation {raw:.4f} with open positions exceeds {s.correlation_reject_above}"
            )
        if refusal:
            # Recorded as a factor of 0 so the decision's correlation check shows the refusal.
            trace.append(SizingAdjustment("correlation", ZERO, refusal))
            raise _Rejected(refusal)
        c = _exact(raw)
        if c <= _exact(s.correlation_reduce_above):
            return Fraction(1)
        # Linear from 1 at the reduce threshold towards 0 at c = 1: (1 - c) / 0.5 by default.
        factor = (1 - c) / (1 - _exact(s.correlation_reduce_above))
        trace.append(
            SizingAdjustment(
                "correlation",
                _dec(factor),
                f"weighted correlation {raw:.4f} with open positions is above "
                f"{s.correlation_reduce_above}: size scaled by (1 - c) / "
                f"{1 - s.correlation_reduce_above}",
            )
        )
        return factor

    # -- dollars, sector cap, shares, heat ----------------------------------------------

    def _dollars(
        self,
        confidence: Fraction,
        multiplier: Fraction,
        book: _Book,
        tier: RiskTierConfig,
        trace: list[SizingAdjustment],
    ) -> Fraction:
        raw_pct = _exact(tier.base_allocation_pct) * confidence / _exact(tier.min_confidence) * multiplier
        pct = raw_pct
        max_pct = _exact(tier.max_position_pct)
        if raw_pct > max_pct:
            pct = max_pct
            trace.append(
                SizingAdjustment(
                    "max_position_pct",
                    _dec(max_pct / raw_pct),
                    f"raw allocation {_dec(raw_pct, 6)} of Active Pool clamped to the "
                    f"{tier.name} tier's max {tier.max_position_pct}",
                )
            )
        dollars = _exact(book.active_pool) * pct
        cap = _exact(self._settings.absolute_position_cap)
        if dollars > cap:
            trace.append(
                SizingAdjustment(
                    "absolute_position_cap",
                    _dec(cap / dollars),
                    f"${_dec(dollars, 2)} exceeds the absolute cap ${self._settings.absolute_position_cap}",
                )
            )
            dollars = cap
        return dollars

    def _position_limit(
        self,
        request: SizingRequest,
        dollars: Fraction,
        book: _Book,
        tier: RiskTierConfig,
        trace: list[SizingAdjustment],
    ) -> Fraction:
        """An add-on to a held ticker: the whole position, not just the new shares, stays within
        `max_position_pct` of the Active Pool and the absolute cap (seed property 1)."""
        held = _exact(book.held_value(request.ticker))
        if held == 0:
            return dollars
        limit = min(
            _exact(tier.max_position_pct) * _exact(book.active_pool),
            _exact(self._settings.absolute_position_cap),
        )
        room = limit - held
        if room <= 0:
            raise _Rejected(
                f"{request.ticker} is already held at ${_dec(held, 2)}, at or above its position limit "
                f"${_dec(limit, 2)} (the {tier.name} tier's {tier.max_position_pct} of Active Pool, "
                f"at most ${self._settings.absolute_position_cap})"
            )
        if dollars <= room:
            return dollars
        trace.append(
            SizingAdjustment(
                "position_limit",
                _dec(room / dollars),
                f"{request.ticker} is already held at ${_dec(held, 2)}; the position may reach "
                f"${_dec(limit, 2)}: add-on cut to ${_dec(room, 2)}",
            )
        )
        return room

    def _cash_limit(self, dollars: Fraction, book: _Book, trace: list[SizingAdjustment]) -> Fraction:
        """Never spend the Reserve Pool or cash the account does not have (pending buys are
        already taken out of the portfolio's cash)."""
        spendable = _exact(book.spendable_cash)
        if spendable <= 0:
            raise _Rejected(
                f"no cash to spend: ${_dec(spendable, 2)} left after keeping the Reserve Pool in cash"
            )
        if dollars <= spendable:
            return dollars
        trace.append(
            SizingAdjustment(
                "cash_available",
                _dec(spendable / dollars),
                f"${_dec(dollars, 2)} exceeds the ${_dec(spendable, 2)} of cash beyond the Reserve Pool: "
                f"position cut to it",
            )
        )
        return spendable

    def _sector_cap(
        self,
        request: SizingRequest,
        dollars: Fraction,
        book: _Book,
        tier: RiskTierConfig,
        trace: list[SizingAdjustment],
    ) -> Fraction:
        # Buying with cash leaves total value unchanged, so the limit is on today's total.
        limit = _exact(tier.max_sector_pct) * _exact(book.total_value)
        held = _exact(book.sector_value.get(request.sector, ZERO))
        room = limit - held
        if room <= 0:
            raise _Rejected(
                f"sector {request.sector!r} already holds ${_dec(held, 2)}, at or above "
                f"{tier.max_sector_pct} of portfolio value (${_dec(limit, 2)})"
            )
        if dollars <= room:
            return dollars
        trace.append(
            SizingAdjustment(
                "sector_cap",
                _dec(room / dollars),
                f"sector {request.sector!r} may hold ${_dec(limit, 2)} "
                f"({tier.max_sector_pct} of value) and holds ${_dec(held, 2)}: "
                f"position cut to ${_dec(room, 2)}",
            )
        )
        return room

    def _shares(self, request: SizingRequest, dollars: Fraction, trace: list[SizingAdjustment]) -> Decimal:
        step = self._settings.share_step
        shares = math.floor(dollars / (_exact(request.current_price) * _exact(step))) * step
        if shares <= 0:
            unit = "share step" if self._settings.fractional_shares else "whole share"
            raise _Rejected(
                f"${_dec(dollars, 2)} buys no {unit} of {request.ticker} at ${price_text(request.current_price)}"
            )
        spent = _exact(shares) * _exact(request.current_price)
        if spent < dollars:
            trace.append(
                SizingAdjustment(
                    "share_rounding",
                    _dec(spent / dollars),
                    f"{shares} shares at ${price_text(request.current_price)} rounded down from ${_dec(dollars, 2)}",
                )
            )
        return shares

    def _heat_check(self, request: SizingRequest, shares: Decimal, book: _Book, tier: RiskTierConfig) -> None:
        new_heat = (_exact(book.risk_dollars) + _exact(shares) * _exact(request.stop_distance)) / _exact(
            book.total_value
        )
        if new_heat > _exact(tier.max_portfolio_heat):
            raise _Rejected(
                f"portfolio heat would be {_dec(new_heat, 4)} with this entry, above the "
                f"{tier.name} tier's max {tier.max_portfolio_heat}"
            )
