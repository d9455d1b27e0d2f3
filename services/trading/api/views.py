"""Assembling the read endpoints' answers from the engine's store, the price book and the read
model: the account as the engine sees it now (by its clock), shaped into the API's models.
No rule is decided here: heat, pools and metrics are the core's own properties and functions.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.trading.api.models import (
    CircuitBreakerView,
    DecisionView,
    EngineView,
    MetricsView,
    NotificationView,
    PositionsView,
    PositionView,
    SnapshotView,
    StatusView,
    TaxLotView,
    TickerCooldown,
    TradeStatsView,
    TradeView,
)
from services.trading.api.runtime import EngineRunner, Runtime
from services.trading.core import circuit_breaker
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ZERO, CircuitBreakerState, HeldPosition, PortfolioState
from services.trading.core.performance_tracker import TradeStats, compute_metrics
from services.trading.core.quote import Quote
from services.trading.core.trading_window import NEW_YORK, new_york_day_start
from services.trading.live import read_model, session_close
from services.trading.market.price_book import PriceBook


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return numerator / denominator if denominator else ZERO


def _position(held: HeldPosition, quote: Quote | None) -> PositionView:
    p, levels = held.position, held.levels
    return PositionView(
        ticker=p.ticker,
        sector=p.sector,
        quantity=p.quantity,
        entry_price=p.entry_price,
        current_price=p.current_price,
        price_as_of=quote.as_of if quote else None,
        market_value=p.market_value,
        cost_basis=p.cost_basis,
        unrealized_pnl=p.unrealized_pnl,
        unrealized_pnl_pct=_ratio(p.current_price - p.entry_price, p.entry_price),
        stop_loss_price=levels.stop_loss_price if levels else None,
        take_profit_price=levels.take_profit_price if levels else None,
        trailing_stop_active=levels.trailing_stop_active if levels else False,
        atr_value=levels.atr_value if levels else None,
        risk_dollars=p.risk_dollars if levels else ZERO,
        signal_confidence=p.signal_confidence if levels else None,
        is_micro_trade=p.is_micro_trade,
        opened_at=p.opened_at,
    )


async def _account(
    runtime: Runtime, now: datetime
) -> tuple[list[HeldPosition], dict[str, Quote], PortfolioState]:
    """Held positions priced at `now`, and the account they make with cash and the reserve."""
    store = runtime.store
    held = await store.held()
    quotes = await PriceBook(runtime.pool).quotes(held.tickers, now)
    positions = held.positions(quotes)
    return positions, quotes, held.holdings(positions)


def engine_view(runtime: Runtime, runner: EngineRunner | None) -> EngineView:
    engine = runtime.engine
    started = bool(engine is not None and engine.started)
    return EngineView(
        attached=engine is not None,
        runs_here=runner is not None,
        started=started,
        holds_lock=bool(engine is not None and engine.holds_lock),
        loop_running=runner.running if runner is not None else started,
        mode=engine.mode.value if engine is not None else None,
        error=runner.error if runner else None,
    )


async def breaker_view(runtime: Runtime, breakers: CircuitBreakerState, now: datetime) -> CircuitBreakerView:
    """The breaker state as the owner sees it: the halt in force (with its reason) and the
    tickers cooling down."""
    active = circuit_breaker.is_active(breakers, now)
    reason = None
    if active and breakers.trigger_type is not None and breakers.triggered_at is not None:
        reason = await read_model.breaker_reason(
            runtime.pool, str(breakers.trigger_type), breakers.triggered_at
        )
    return CircuitBreakerView(
        active=active,
        trigger=str(breakers.trigger_type) if active and breakers.trigger_type else None,
        reason=reason,
        triggered_at=breakers.triggered_at if active else None,
        until=breakers.cooldown_expires if active else None,
        ticker_cooldowns=[
            TickerCooldown(ticker=t, until=until)
            for t, until in sorted(breakers.ticker_cooldowns.items())
            if until > now
        ],
    )


async def status(runtime: Runtime, runner: EngineRunner | None) -> StatusView:
    now = runtime.clock.now()
    store = runtime.store
    (held, quotes, portfolio), row, breakers, last_decision, micro_entries = await asyncio.gather(
        _account(runtime, now),
        store.config_row(),
        store.breaker_state(),
        read_model.last_decision_at(runtime.pool),
        store.micro_entries_since(new_york_day_start(now)),
    )
    settings = EngineSettings.from_row(row)
    breaker = await breaker_view(runtime, breakers, now)
    positions = [_position(h, quotes.get(h.position.ticker)) for h in held]
    return StatusView(
        as_of=now,
        enabled=settings.enabled,
        paused=settings.paused,
        risk_tier=settings.risk_tier.value,
        circuit_breaker=breaker,
        total_value=portfolio.total_value,
        cash=portfolio.cash,
        active_pool=portfolio.active_pool,
        reserve_pool=portfolio.reserve_pool,
        portfolio_heat=portfolio.portfolio_heat,
        max_portfolio_heat=settings.tier.max_portfolio_heat,
        open_position_count=len(positions),
        open_positions=positions,
        last_decision_at=last_decision,
        micro_entries_today=micro_entries,
        engine=engine_view(runtime, runner),
        trading_mode=runtime.trading_mode_now.value,
        broker=runtime.broker.value,
    )


async def positions(runtime: Runtime) -> PositionsView:
    now = runtime.clock.now()
    held, quotes, portfolio = await _account(runtime, now)
    return PositionsView(
        as_of=now,
        total_value=portfolio.total_value,
        items=[_position(h, quotes.get(h.position.ticker)) for h in held],
        sector_exposure=portfolio.sector_exposure,
    )


def _profit_factor(value: float | None) -> dict[str, Any]:
    infinite = value is not None and math.isinf(value) and value > 0
    return {"profit_factor": None if infinite else value, "profit_factor_infinite": infinite}


def _trade_stats(stats: TradeStats) -> TradeStatsView:
    return TradeStatsView(
        trade_count=stats.trade_count,
        win_count=stats.win_count,
        loss_count=stats.loss_count,
        win_rate=stats.win_rate,
        avg_win=stats.avg_win,
        avg_loss=stats.avg_loss,
        realized_pnl=stats.realized_pnl,
        unrealized_pnl=stats.unrealized_pnl,
        **_profit_factor(stats.profit_factor),
    )


async def metrics(runtime: Runtime) -> MetricsView:
    """`performance_tracker.compute_metrics` on the account now, every closed trade and the
    end-of-day snapshots before today. The day's P&L is measured from the value the engine
    recorded at the session's first tick, else from the last close."""
    now = runtime.clock.now()
    today = now.astimezone(NEW_YORK).date()
    (_, _, portfolio), trades, curve, start = await asyncio.gather(
        _account(runtime, now),
        session_close.closed_trades(runtime.pool),
        session_close.equity_curve(runtime.pool, today),
        read_model.start_of_day_value(runtime.pool, today),
    )
    if start is None:
        start = curve[-1] if curve else portfolio.total_value
    report = compute_metrics(
        portfolio=portfolio,
        closed_trades=trades,
        equity_curve=curve,
        start_of_day_value=start,
        computed_at=now,
    )
    m = report.metrics
    return MetricsView(
        as_of=now,
        total_portfolio_value=m.total_portfolio_value,
        active_pool=m.active_pool,
        reserve_pool=m.reserve_pool,
        unrealized_pnl=m.unrealized_pnl,
        realized_pnl=m.realized_pnl,
        daily_pnl=m.daily_pnl,
        trade_count=m.trade_count,
        win_count=m.win_count,
        loss_count=m.loss_count,
        win_rate=m.win_rate,
        avg_win=m.avg_win,
        avg_loss=m.avg_loss,
        sharpe_ratio=m.sharpe_ratio,
        max_drawdown=m.max_drawdown,
        current_drawdown=m.current_drawdown,
        portfolio_heat=m.portfolio_heat,
        micro=_trade_stats(report.micro),
        history_days=len(curve),
        **_profit_factor(m.profit_factor),
    )


# -- rows to models ------------------------------------------------------------------------------


def _pick(model: type, row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in model.model_fields if name in row}


def decision(row: Mapping[str, Any]) -> DecisionView:
    return DecisionView(**_pick(DecisionView, row))


def trade(row: Mapping[str, Any]) -> TradeView:
    cost = row["entry_price"] * row["quantity"]
    return TradeView(
        **_pick(TradeView, row),
        pnl_pct=_ratio(row["pnl"], cost),
        hold_duration_seconds=(row["exit_at"] - row["entry_at"]).total_seconds(),
    )


def tax_lot(row: Mapping[str, Any]) -> TaxLotView:
    wash, absorbed = row["wash_sale_details"] or {}, row["basis_adjustment"] or {}
    cost = row["cost_basis_per_share"] * row["quantity"] + row["fees"]
    exit_price = row["exit_price"]
    stored = {k: v for k, v in _pick(TaxLotView, row).items() if k != "basis_adjustment"}
    return TaxLotView(
        **stored,
        cost_basis=cost,
        proceeds=None if exit_price is None else exit_price * row["quantity"] - row["sale_fees"],
        disallowed_loss=Decimal(wash.get("disallowed_loss", "0")),
        wash_sale=wash.get("description"),
        basis_adjustment=absorbed.get("description"),
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def snapshot(row: Mapping[str, Any]) -> SnapshotView:
    extra = row["metrics"] or {}
    daily_pnl = extra.get("daily_pnl")
    return SnapshotView(
        **_pick(SnapshotView, row),
        current_drawdown=row["current_drawdown_pct"],
        daily_pnl=Decimal(str(daily_pnl)) if daily_pnl is not None else None,
        trade_count=extra.get("trade_count"),
        **_profit_factor(_float(extra.get("profit_factor"))),
    )


def notification(row: Mapping[str, Any]) -> NotificationView:
    return NotificationView(**_pick(NotificationView, row))
