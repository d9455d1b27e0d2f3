"""Before a buy is sent: the day-order rule for every entry, and for a later tranche the full
entry checks again, at its price now (seed task 12.2, issue 13).

A gradual entry is decided once and bought in tranches (30 minutes apart live, a session apart
in the backtest's daily bars). Meanwhile the book, the price, the breakers and the tier move, so
tranche 2 and 3 go only if a buy of their size, at the price now, would still pass what a buy
decision meets (`decision._buy`): the trading window of their own session (time in force: day),
the engine on and not paused, no circuit breaker or ticker cooldown, the Active Pool minimum and
the tier's minimum confidence, the entry guards (declining positions, open-position limit, no
standard entry on a micro-trade), a current price, and the sizer's rules for adding this
quantity (`PositionSizer.fit_addition`): refused on earnings, correlation or portfolio heat with
the tranche's own stop distance; cut, as a new entry would be, to the position limit, the sector
cap and the cash beyond the Reserve Pool. Both drivers call this: the live engine as it
delivers the outbox, the backtester as a tranche falls due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.trading.core import circuit_breaker, entry_guards, micro_trading, price_age, trading_window
from services.trading.core.decision import MarketFacts
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import CircuitBreakerState, PortfolioState
from services.trading.core.position_sizer import CorrelationSource, PositionSizer, SizingRequest


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a due buy is not sent now: cancelled with `reason` (and the rest of its entry with
    it), or, with no reason, kept for later."""

    reason: str | None


WAIT = Refusal(None)


@dataclass(frozen=True, slots=True)
class Cut:
    """Send the tranche with fewer shares: `quantity` is what fits the sizer's caps now."""

    quantity: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class DueTranche:
    """A later tranche (index 2 and up) of a gradual entry, as it falls due. `session` is the
    New York date whose trading window it must go in; `stop_distance` is per share, from its
    stop plan (ATR x multiplier at the decision), the distance its fill will stop at."""

    ticker: str
    quantity: Decimal
    index: int
    count: int
    session: date
    stop_distance: Decimal
    confidence: Decimal


def send_refusal(
    ticker: str, session: date, settings: EngineSettings, breakers: CircuitBreakerState, now: datetime
) -> Refusal | None:
    """What every buy (first orders too) meets when it is sent: only inside the trading window
    of `session` (an entry is a day order), with the engine on and not paused, and no breaker
    halt or cooldown of the ticker. `WAIT` before that window opens."""
    if now.astimezone(trading_window.NEW_YORK).date() != session:
        return Refusal("an entry from an earlier session is not sent late (time in force: day)")
    if not trading_window.is_within_trading_window(now):
        times = trading_window.session_times(session)
        if times is not None and now < times[0] + trading_window.WINDOW_BUFFER:
            return WAIT
        return Refusal("the trading window closed before the order was sent")
    if settings.paused or not settings.enabled:
        return Refusal("engine paused or disabled before the order was sent")
    if circuit_breaker.is_active(breakers, now):
        return Refusal("a circuit breaker tripped before the order was sent")
    if circuit_breaker.is_ticker_in_cooldown(breakers, ticker, now):
        return Refusal(f"{ticker} entered its single-position cooldown before the order was sent")
    return None


def check_tranche(
    tranche: DueTranche,
    portfolio: PortfolioState,
    breakers: CircuitBreakerState,
    settings: EngineSettings,
    market: MarketFacts,
    correlations: CorrelationSource,
    now: datetime,
) -> Refusal | Cut | None:
    """Whether `tranche` may be bought now, into `portfolio` (the book without this entry's
    unsent tranches), at `market.price`: None to send it as decided, a `Cut` to send fewer
    shares (the position limit, sector cap or cash would be passed), `WAIT`, or the refusal."""
    refused = send_refusal(tranche.ticker, tranche.session, settings, breakers, now)
    if refused is not None:
        return refused
    reason = _entry_refusal(tranche, portfolio, breakers, settings, market, now)
    if reason is not None:
        return Refusal(reason)
    return _sized(tranche, portfolio, settings, market, correlations)


def _entry_refusal(
    tranche: DueTranche,
    portfolio: PortfolioState,
    breakers: CircuitBreakerState,
    settings: EngineSettings,
    market: MarketFacts,
    now: datetime,
) -> str | None:
    blocked = entry_guards.new_entry_block_reason(
        tranche.ticker,
        portfolio.positions,
        breakers,
        now,
        max_open_positions=settings.max_open_positions,
        checks=[],
    )
    blocked = blocked or micro_trading.mixed_position_reason(tranche.ticker, portfolio.positions, micro=False)
    if blocked:
        return blocked
    if market.price is None or market.price <= 0:
        return f"no market price for {tranche.ticker}"
    return price_age.stale_price_reason(
        tranche.ticker, market.price_as_of, market.price_interval, now, settings.stops.price_stale_after
    )


def _sized(
    tranche: DueTranche,
    portfolio: PortfolioState,
    settings: EngineSettings,
    market: MarketFacts,
    correlations: CorrelationSource,
) -> Refusal | Cut | None:
    request = SizingRequest(
        tranche.ticker,
        market.sector,
        tranche.confidence,
        market.price,
        tranche.stop_distance,
        market.sessions_until_earnings,
    )
    sizer = PositionSizer(correlations, settings.sizing)
    fit = sizer.fit_addition(request, tranche.quantity, portfolio, settings.tier)
    if fit.rejected:
        return Refusal(fit.rejection_reason or "the sizer refused the tranche")
    if fit.share_quantity < tranche.quantity:
        return Cut(fit.share_quantity, "; ".join(a.reason for a in fit.adjustments))
    return None
