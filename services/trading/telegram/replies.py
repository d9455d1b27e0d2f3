"""The bot's answers as text, from the API's own views: the phone reads what the dashboard
reads. Pure: values in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.trading.api.models import PositionsView, StatusView, TradeView
from services.trading.notifications.formatting import money

# The bot's menu (setMyCommands) and /help.
COMMANDS = {
    "status": "engine, breaker, value and pools",
    "positions": "open positions with their P&L",
    "trades": "the last closed trades",
    "daily": "the last session's summary",
    "pause": "no new entries (confirm by a tap)",
    "resume": "allow new entries again (confirm by a tap)",
    "halt": "<reason>: the manual circuit breaker (confirm by a tap)",
    "clear": "lift your halt (confirm by a tap)",
    "tier": "conservative|moderate|aggressive: set the risk tier (confirm by a tap)",
}
HELP = "Commands:\n" + "\n".join(f"/{name} – {what}" for name, what in COMMANDS.items())


def _pct(value: Decimal | float) -> str:
    return f"{float(value):+.2%}"


def status(view: StatusView) -> str:
    if not view.enabled:
        state = "disabled (STONKS_TRADING_ENABLED or PUT /config)"
    elif view.paused:
        state = "paused: no new entries"
    else:
        state = "trading"
    breaker = view.circuit_breaker
    halted = f"HALTED ({breaker.trigger}: {breaker.reason})" if breaker.active else "clear"
    return "\n".join(
        [
            f"Engine: {state}",
            f"Circuit breaker: {halted}",
            f"Risk tier: {view.risk_tier}",
            f"Total value: {money(view.total_value)} (cash {money(view.cash)})",
            f"Active pool: {money(view.active_pool)} · Reserve Pool: {money(view.reserve_pool)}",
            f"Heat: {float(view.portfolio_heat):.1%} of {float(view.max_portfolio_heat):.1%}",
            f"Open positions: {view.open_position_count}",
            f"As of {view.as_of:%Y-%m-%d %H:%M} UTC",
        ]
    )


def positions(view: PositionsView) -> str:
    if not view.items:
        return f"No open positions. Total value {money(view.total_value)}."
    lines = [f"{len(view.items)} open, total value {money(view.total_value)}:"]
    for p in view.items:
        micro = " (micro)" if p.is_micro_trade else ""
        lines.append(
            f"{p.ticker}{micro} {p.quantity.normalize():f} @ {money(p.entry_price)} → {money(p.current_price)}: "
            f"{money(p.unrealized_pnl, signed=True)} ({_pct(p.unrealized_pnl_pct)}), stop {money(p.stop_loss_price)}"
        )
    return "\n".join(lines)


def trades(items: Sequence[TradeView], total: int) -> str:
    if not items:
        return "No closed trades yet."
    lines = [f"Last {len(items)} of {total} closed trades:"]
    for t in items:
        lines.append(
            f"{t.exit_at:%Y-%m-%d} {t.ticker} {t.quantity.normalize():f}: {money(t.pnl, signed=True)} "
            f"({_pct(t.pnl_pct)}), {t.exit_reason}"
        )
    return "\n".join(lines)
