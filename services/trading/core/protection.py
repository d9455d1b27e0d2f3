"""The protective pass over open positions at one instant (seed tasks 6.1, 8.1, 17.1, 25.1):
trailing stops, stop re-evaluation, stop and take-profit crossings, the single-position
breaker, missing prices, heat tightening and micro-trade auto-close.

Pure: the held positions, quotes and settings go in; new stop levels, exits and breaker
events come out for the engine to persist and send. The live engine and the demo replay run
this same pass; its stop maintenance (`maintain_stops`) is the backtest's too.
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
from services.trading.core.micro_trading import MicroExitProposal
from services.trading.core.models import (
    CircuitBreakerState,
    HeldPosition,
    OpenPosition,
    StopLevels,
    StopTrigger,
)
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


NO_MARKET_FACTS = PositionMarket()  # no new ATR reading, no earnings soon


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


@dataclass(frozen=True, slots=True)
class StopUpkeep:
    """What one pass of stop maintenance decided: the levels to keep (trailed, re-evaluated,
    tightened for heat), the holdings whose levels the price now crosses, and the
    micro-trades past their maximum hold."""

    level_updates: Mapping[str, StopLevels]
    crossings: Mapping[str, StopTrigger]
    micro_closes: tuple[MicroExitProposal, ...]


def maintain_stops(
    held: Sequence[HeldPosition],
    prices: Mapping[str, Decimal],
    markets: Mapping[str, PositionMarket],
    settings: EngineSettings,
    now: datetime,
    *,
    high_severity_event: bool,
    total_value: Decimal,
    exiting: frozenset[str] = frozenset(),
) -> StopUpkeep:
    """Stop maintenance for live and backtest alike (seed tasks 6.1, 17.1): trail, then
    re-evaluate, every holding with levels and a price and no sell on its way; close
    micro-trades past their hold; then tighten for heat over the positions that stay.

    A holding leaving (a sell on its way, its levels crossed at the price, its hold over) is
    not tightened: tightening it would spend the heat cut on a position about to go. A
    holding without a price keeps its levels (nothing new to trail on)."""
    moved: dict[str, StopLevels] = {}
    crossings: dict[str, StopTrigger] = {}
    micro_held: list[OpenPosition] = []
    for h in held:
        ticker = h.position.ticker
        if ticker in exiting:
            continue
        if h.position.is_micro_trade:
            micro_held.append(h.position)
        price = prices.get(ticker)
        if h.levels is None or price is None:
            continue
        levels = _updated_levels(
            h, price, markets.get(ticker, NO_MARKET_FACTS), high_severity_event, settings, now
        )
        if levels is not None:
            moved[ticker] = levels
        trigger = stop_loss_manager.check_price_crossing(ticker, levels or h.levels, price)
        if trigger is not None:
            crossings[ticker] = trigger
    micro = (
        micro_trading.positions_to_auto_close(
            [p for p in micro_held if p.ticker not in crossings], now, settings.micro
        )
        if micro_held
        else ()
    )
    leaving = exiting.union(crossings, (m.ticker for m in micro))
    moved.update(_heat_tightening(held, moved, leaving, total_value, settings, now))
    return StopUpkeep(moved, crossings, micro)


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
    get no second exit. A price missing for too long closes the holding; the stops are
    maintained (`maintain_stops`) on the quotes that are fresh; a crossed level, the
    single-position breaker or a micro-trade's hold closes it."""
    fresh, stale = _priced(held, quotes, settings, now, exiting)
    upkeep = maintain_stops(
        held,
        fresh,
        markets,
        settings,
        now,
        high_severity_event=high_severity_event,
        total_value=total_value,
        exiting=exiting | stale,
    )
    exits: list[Exit] = []
    events: list[CircuitBreakerEvent] = []
    for h in held:
        p = h.position
        if p.ticker in stale:
            exits.append(_price_missing_exit(p, settings))
        if p.ticker not in fresh:
            continue
        trigger = upkeep.crossings.get(p.ticker)
        if trigger is not None:
            exits.append(_crossing_exit(p, trigger, fresh[p.ticker]))
            continue
        check = circuit_breaker.check_single_position(
            breakers, replace(p, current_price=fresh[p.ticker]), now, settings.breakers
        )
        if check.event is not None:
            breakers = check.state
            events.append(check.event)
            exits.append(
                Exit(
                    p.ticker,
                    p.quantity,
                    OrderReason.EMERGENCY,
                    check.reason,
                    fresh[p.ticker],
                    p.is_micro_trade,
                )
            )
    exits += _micro_exits(upkeep.micro_closes, quotes, {e.ticker for e in exits})
    return ProtectionPlan(upkeep.level_updates, tuple(exits), tuple(events), breakers)


def _micro_exits(
    closes: Sequence[MicroExitProposal], quotes: Mapping[str, Quote], closing: set[str]
) -> list[Exit]:
    """Micro-trades past their hold, unless another exit of this pass already closes them."""
    return [
        Exit(
            m.ticker,
            m.quantity,
            m.order_reason,
            m.reason,
            quotes[m.ticker].price if m.ticker in quotes else None,
            True,
        )
        for m in closes
        if m.ticker not in closing
    ]


def _priced(
    held: Sequence[HeldPosition],
    quotes: Mapping[str, Quote],
    settings: EngineSettings,
    now: datetime,
    exiting: frozenset[str],
) -> tuple[dict[str, Decimal], frozenset[str]]:
    """Fresh prices of the holdings not already exiting, and the holdings whose price has been
    missing too long (closed rather than held blind)."""
    fresh: dict[str, Decimal] = {}
    stale: set[str] = set()
    for h in held:
        ticker = h.position.ticker
        if ticker in exiting:
            continue
        quote = quotes.get(ticker)
        if stop_loss_manager.check_price_unavailable(
            ticker, quote.confirmed_at(now) if quote else None, now, settings.stops
        ):
            stale.add(ticker)
        elif quote is not None:
            fresh[ticker] = quote.price
    return fresh, frozenset(stale)


def _price_missing_exit(p: OpenPosition, settings: EngineSettings) -> Exit:
    return Exit(
        p.ticker,
        p.quantity,
        OrderReason.EMERGENCY,
        f"no price for {p.ticker} for more than {settings.stops.price_stale_after} of "
        "market time: closing rather than holding blind",
        None,
        p.is_micro_trade,
    )


def _crossing_exit(p: OpenPosition, trigger: StopTrigger, price: Decimal) -> Exit:
    return Exit(
        p.ticker,
        p.quantity,
        TRIGGER_REASONS[trigger.trigger_type],
        f"{trigger.trigger_type}: price {price} crossed {trigger.trigger_price}",
        price,
        p.is_micro_trade,
    )


def _heat_tightening(
    held: Sequence[HeldPosition],
    updates: Mapping[str, StopLevels],
    leaving: frozenset[str],
    total_value: Decimal,
    settings: EngineSettings,
    now: datetime,
) -> dict[str, StopLevels]:
    """Above 80% of the tier's maximum heat, tighten the lowest-confidence stops first."""
    positions: list[OpenPosition] = []
    for h in held:
        levels = updates.get(h.position.ticker, h.levels)
        if levels is None or h.position.ticker in leaving:
            continue
        position = h.position
        if position.stop_loss_price != levels.stop_loss_price:
            position = replace(position, stop_loss_price=levels.stop_loss_price)
        positions.append(position)
    adjustments = stop_loss_manager.tighten_for_heat(
        positions, total_value, settings.tier.max_portfolio_heat, settings.stops
    )
    if not adjustments:
        return {}
    levels_of = {h.position.ticker: updates.get(h.position.ticker, h.levels) for h in held}
    return {
        a.ticker: replace(levels_of[a.ticker], stop_loss_price=a.new_stop, last_updated=now)
        for a in adjustments
    }
