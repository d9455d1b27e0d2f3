"""The protective pass over open positions at one instant (seed tasks 6.1, 8.1, 17.1, 25.1):
trailing stops, stop re-evaluation, stop and take-profit crossings, the single-position
breaker, missing prices, heat tightening and micro-trade auto-close.

Pure: the held positions, quotes and settings go in; new stop levels, exits and breaker
events come out for the engine to persist and send. The live engine and the demo replay run
this same pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.shared.schemas import OrderReason
from services.trading.core import circuit_breaker, micro_trading, stop_loss_manager
from services.trading.core.circuit_breaker import CircuitBreakerEvent
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import CircuitBreakerState, HeldPosition, OpenPosition, StopLevels
from services.trading.core.quote import Quote

TRIGGER_REASONS = {
    "stop_loss": OrderReason.STOP_LOSS,
    "trailing_stop": OrderReason.TRAILING_STOP,
    "take_profit": OrderReason.TAKE_PROFIT,
    "price_unavailable": OrderReason.EMERGENCY,
}


@dataclass(frozen=True, slots=True)
class Exit:
    ticker: str
    quantity: Decimal
    reason: OrderReason
    detail: str
    price: Decimal | None
    is_micro: bool = False


@dataclass(frozen=True, slots=True)
class ProtectionPlan:
    level_updates: Mapping[str, StopLevels]
    exits: tuple[Exit, ...]
    breaker_events: tuple[CircuitBreakerEvent, ...]
    breakers: CircuitBreakerState
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PositionMarket:
    """Per-ticker market facts the pass needs beyond the quote."""

    atr: Decimal | None = None
    earnings_soon: bool = False


def _updated_levels(
    held: HeldPosition,
    price: Decimal,
    market: PositionMarket,
    high_severity: bool,
    settings: EngineSettings,
    now: datetime,
) -> StopLevels | None:
    """Trailing first, then re-evaluation on ATR or multiplier change; None if unchanged."""
    levels = held.levels
    entry = held.position.entry_price
    changed = None
    trailed = stop_loss_manager.apply_trailing_stop(levels, entry, price, now, settings.stops)
    if trailed is not None:
        levels = changed = trailed
    if market.atr is not None and market.atr > 0 and not held.position.is_micro_trade:
        base = settings.tier.stop_loss_atr_multiplier
        multiplier = stop_loss_manager.effective_atr_multiplier(
            base,
            earnings_soon=market.earnings_soon,
            high_severity_event=high_severity,
            settings=settings.stops,
        )
        reevaluated = stop_loss_manager.re_evaluate_levels(
            levels, entry, market.atr, now, atr_multiplier=multiplier, settings=settings.stops
        )
        if reevaluated is not None:
            changed = reevaluated
    return changed


def protect(
    held: Sequence[HeldPosition],
    quotes: Mapping[str, Quote],
    markets: Mapping[str, PositionMarket],
    breakers: CircuitBreakerState,
    settings: EngineSettings,
    now: datetime,
    *,
    high_severity_event: bool,
    total_value: Decimal,
    exiting: frozenset[str] = frozenset(),
) -> ProtectionPlan:
    """One protective pass. `exiting` names tickers with a sell already on its way, which
    get no second exit."""
    updates: dict[str, StopLevels] = {}
    exits: list[Exit] = []
    events: list[CircuitBreakerEvent] = []
    for h in held:
        p = h.position
        if p.ticker in exiting:
            continue
        quote = quotes.get(p.ticker)
        missing = stop_loss_manager.check_price_unavailable(
            p.ticker, quote.confirmed_at(now) if quote else None, now, settings.stops
        )
        if quote is None or missing is not None:
            if missing is not None:
                exits.append(
                    Exit(
                        p.ticker,
                        p.quantity,
                        OrderReason.EMERGENCY,
                        f"no price for {p.ticker} for more than {settings.stops.price_stale_after} of "
                        "market time: closing rather than holding blind",
                        None,
                        p.is_micro_trade,
                    )
                )
            continue
        exit_ = _exit_for(
            h,
            quote.price,
            markets.get(p.ticker, PositionMarket()),
            high_severity_event,
            settings,
            now,
            updates,
        )
        if exit_ is None:
            check = circuit_breaker.check_single_position(
                breakers, replace(p, current_price=quote.price), now, settings.breakers
            )
            if check.event is not None:
                breakers = check.state
                events.append(check.event)
                exit_ = Exit(
                    p.ticker, p.quantity, OrderReason.EMERGENCY, check.reason, quote.price, p.is_micro_trade
                )
        if exit_ is not None:
            exits.append(exit_)
    exits += _micro_exits(held, quotes, now, settings, {e.ticker for e in exits} | exiting)
    updates.update(_heat_tightening(held, updates, {e.ticker for e in exits}, total_value, settings))
    return ProtectionPlan(updates, tuple(exits), tuple(events), breakers)


def _exit_for(
    h: HeldPosition,
    price: Decimal,
    market: PositionMarket,
    high_severity: bool,
    settings: EngineSettings,
    now: datetime,
    updates: dict[str, StopLevels],
) -> Exit | None:
    if h.levels is None:
        return None
    levels = _updated_levels(h, price, market, high_severity, settings, now)
    if levels is not None:
        updates[h.position.ticker] = levels
    trigger = stop_loss_manager.check_price_crossing(h.position.ticker, levels or h.levels, price)
    if trigger is None:
        return None
    return Exit(
        h.position.ticker,
        h.position.quantity,
        TRIGGER_REASONS[trigger.trigger_type],
        f"{trigger.trigger_type}: price {price} crossed {trigger.trigger_price}",
        price,
        h.position.is_micro_trade,
    )


def _micro_exits(
    held: Sequence[HeldPosition],
    quotes: Mapping[str, Quote],
    now: datetime,
    settings: EngineSettings,
    already: set[str],
) -> list[Exit]:
    positions = [h.position for h in held if h.position.ticker not in already]
    return [
        Exit(
            e.ticker,
            e.quantity,
            e.order_reason,
            e.reason,
            quotes[e.ticker].price if e.ticker in quotes else None,
            True,
        )
        for e in micro_trading.positions_to_auto_close(positions, now, settings.micro)
    ]


def _heat_tightening(
    held: Sequence[HeldPosition],
    updates: Mapping[str, StopLevels],
    exiting: set[str],
    total_value: Decimal,
    settings: EngineSettings,
) -> dict[str, StopLevels]:
    """Above 80% of the tier's maximum heat, tighten the lowest-confidence stops first."""
    current: dict[str, tuple[OpenPosition, StopLevels]] = {}
    for h in held:
        levels = updates.get(h.position.ticker, h.levels)
        if levels is None or h.position.ticker in exiting:
            continue
        current[h.position.ticker] = (replace(h.position, stop_loss_price=levels.stop_loss_price), levels)
    adjustments = stop_loss_manager.tighten_for_heat(
        [p for p, _ in current.values()], total_value, settings.tier.max_portfolio_heat, settings.stops
    )
    return {a.ticker: replace(current[a.ticker][1], stop_loss_price=a.new_stop) for a in adjustments}
