"""Notification text for a phone screen and for an inbox (seed task 16.1), pure.

Formatting is tolerant: a missing or malformed figure reads "n/a" instead of raising,
because an alert about a halted engine must go out even when one of its numbers is odd.
The SMS is GSM-7-safe ASCII under 160 characters, so it is one segment on any phone;
figures come first and free text last, so a cut shortens the explanation, never the numbers.
Money is Decimal, shown with $ and 2 decimals; fractions are shown as percentages.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from services.shared.schemas import NotificationChannel
from services.shared.schemas import NotificationEventType as E
from services.trading.core.trading_window import NEW_YORK
from services.trading.notifications.events import NotificationEvent

# One GSM-7 segment holds 160 characters; "under 160" keeps one to spare.
SMS_MAX_CHARS = 159
SUBJECT_MAX_CHARS = 150
SMS_PREFIX = "STONKS"
SUBJECT_PREFIX = "[stonks]"
NA = "n/a"
CENT = Decimal("0.01")
HUGE = Decimal("1e15")
# ASCII characters outside the GSM-7 basic table (they cost two characters or cannot be
# sent), replaced so the length we count is the length the carrier bills.
_NOT_GSM_BASIC = str.maketrans(
    {"`": "'", "[": "(", "]": ")", "{": "(", "}": ")", "\\": "/", "^": "'", "|": "/", "~": "-"}
)
_WHITESPACE = re.compile(r"\s+")
_PERCENT_TRIGGERS = {"daily_loss", "single_position"}


@dataclass(frozen=True, slots=True)
class Message:
    """An event rendered once for every channel; `data` is JSON-safe (for webhooks)."""

    event_type: E
    occurred_at: datetime
    sms: str
    subject: str
    body: str
    data: Mapping[str, Any]

    def text_for(self, channel: NotificationChannel | str) -> str:
        """What the `notifications.message` column records for this channel."""
        if NotificationChannel(channel) in (NotificationChannel.EMAIL, NotificationChannel.TELEGRAM):
            return f"{self.subject}\n\n{self.body}"
        return self.sms


# -- figures ------------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal, or None for anything missing or not a number.

    Magnitudes past a quadrillion are not real figures of this account; they are clamped
    so a corrupt value cannot turn into a thousand-digit string."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not number.is_finite():
        return None
    return number if abs(number) < HUGE else HUGE.copy_sign(number)


def _cents(number: Decimal) -> Decimal:
    """Rounded to 2 decimals; beyond Decimal's 28 digits (absurd sums) rounding is moot."""
    try:
        return number.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return number


def money(value: Any, *, signed: bool = False) -> str:
    """`$1,234.56`; with `signed`, `+$1,234.56` / `-$1,234.56` (P&L)."""
    number = to_decimal(value)
    if number is None:
        return NA
    cents = _cents(number)
    sign = "-" if cents < 0 else ("+" if signed and cents > 0 else "")
    return f"{sign}${abs(cents):,.2f}"


def percent(value: Any, *, signed: bool = False) -> str:
    """A fraction as a percentage with 2 decimals: 0.0312 -> `3.12%`."""
    number = to_decimal(value)
    if number is None:
        return NA
    pct = _cents(number * 100)
    return f"{'+' if signed and pct > 0 else ''}{pct:,.2f}%"


def quantity(value: Any) -> str:
    """Shares: whole numbers without decimals, fractional shares as given."""
    number = to_decimal(value)
    if number is None:
        return NA
    if number == number.to_integral_value():
        return f"{number:,.0f}"
    return f"{number.normalize():,f}"


def ratio(value: Any) -> str:
    number = to_decimal(value)
    return NA if number is None else f"{_cents(number):,.2f}"


def text(value: Any) -> str:
    return NA if value is None or value == "" else str(value)


def new_york_time(value: Any) -> str:
    """`2026-03-06 16:30 ET` for an aware datetime; dates and text as they are."""
    if isinstance(value, datetime):
        return value.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET") if value.tzinfo else str(value)
    return NA if value is None else str(value)


def sms_safe(raw: str) -> str:
    """One line of GSM-7-basic ASCII: accents dropped, other symbols replaced by '?'."""
    decomposed = unicodedata.normalize("NFKD", raw)
    ascii_only = "".join(c if c.isascii() else ("" if unicodedata.combining(c) else "?") for c in decomposed)
    printable = "".join(c if c.isprintable() or c.isspace() else "?" for c in ascii_only)
    return _WHITESPACE.sub(" ", printable.translate(_NOT_GSM_BASIC)).strip()


def fit_sms(raw: str) -> str:
    """`raw` made SMS-safe and cut to `SMS_MAX_CHARS`, the cut marked with '...'."""
    line = sms_safe(raw)
    return line if len(line) <= SMS_MAX_CHARS else line[: SMS_MAX_CHARS - 3].rstrip() + "..."


def header_safe(raw: str) -> str:
    """A subject line: one line (no CR/LF, so no header injection), bounded length."""
    line = _WHITESPACE.sub(" ", "".join(c if c.isprintable() else " " for c in raw)).strip()
    return line if len(line) <= SUBJECT_MAX_CHARS else line[: SUBJECT_MAX_CHARS - 3] + "..."


def json_safe(value: Any) -> Any:
    """Data for a JSON body: Decimal and dates as strings, mappings and sequences walked."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _breaker_figure(trigger_type: Any, value: Any) -> str:
    if str(trigger_type) in _PERCENT_TRIGGERS:
        return percent(value)
    if str(trigger_type) == "volatility":
        return f"{quantity(value)} stop-outs"
    return ratio(value)


def _body(headline: str, rows: list[tuple[str, str]], closing: str) -> str:
    width = max(len(label) for label, _ in rows)
    table = "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)
    return f"{headline}\n\n{table}\n\n{closing}\n\n-- \nstonks autonomous trading engine\n"


# -- one formatter per event type: (sms, subject, body) ------------------------------------

Parts = tuple[str, str, str]


def _breaker_triggered(d: Mapping[str, Any], at: datetime) -> Parts:
    kind, ticker = text(d.get("trigger_type")), d.get("ticker")
    actual = _breaker_figure(kind, d.get("actual_value"))
    limit = _breaker_figure(kind, d.get("threshold_value"))
    until = new_york_time(d.get("cooldown_expires")) if d.get("cooldown_expires") else "manual resume"
    what = f"{kind} {ticker}" if ticker else kind
    # A single-position breaker closes one position and cools its ticker down; the others halt entries.
    pause = "Cooldown until" if ticker else "Halted until"
    sms = f"{SMS_PREFIX} BREAKER {what}: {actual} vs limit {limit}. {pause} {until}. {text(d.get('reason'))}"
    subject = f"Circuit breaker tripped: {what} ({actual}, limit {limit})"
    body = _body(
        f"A circuit breaker tripped at {new_york_time(at)}.",
        [
            ("Trigger", kind),
            ("Ticker", text(ticker)),
            ("Actual", actual),
            ("Limit", limit),
            (pause, until),
            ("Reason", text(d.get("reason"))),
        ],
        f"The position was closed; {ticker} is not re-entered before {until}."
        if ticker
        else "No new entries are made while the halt lasts; open positions keep their stops.",
    )
    return sms, subject, body


def _breaker_resumed(d: Mapping[str, Any], at: datetime) -> Parts:
    kind, ticker = text(d.get("trigger_type")), d.get("ticker")
    what = f"{kind} {ticker}" if ticker else kind
    sms = f"{SMS_PREFIX} RESUMED after {what} halt at {new_york_time(at)}. {text(d.get('reason'))}"
    subject = f"Trading resumed: {what} halt ended"
    body = _body(
        f"A circuit-breaker halt ended at {new_york_time(at)}; the engine may trade again.",
        [("Trigger", kind), ("Ticker", text(ticker)), ("Reason", text(d.get("reason")))],
        "New entries follow the usual rules from now on.",
    )
    return sms, subject, body


def _tier_changed(d: Mapping[str, Any], at: datetime) -> Parts:
    old, new = text(d.get("previous_tier")), text(d.get("new_tier"))
    win, dd, res = percent(d.get("win_rate")), percent(d.get("drawdown")), percent(d.get("reserve_pct"))
    sms = (
        f"{SMS_PREFIX} RISK TIER {old} -> {new}. Win rate {win}, drawdown {dd}, reserve {res}. "
        f"{text(d.get('reason'))}"
    )
    subject = f"Risk tier changed: {old} -> {new}"
    body = _body(
        f"The risk tier changed from {old} to {new} at {new_york_time(at)}.",
        [
            ("Previous tier", old),
            ("New tier", new),
            ("30-day win rate", win),
            ("Drawdown", dd),
            ("Reserve Pool share", res),
            ("Reason", text(d.get("reason"))),
        ],
        "Position sizes, confidence threshold and stops follow the new tier from the next decision.",
    )
    return sms, subject, body


def _emergency(d: Mapping[str, Any], at: datetime) -> Parts:
    dd, limit = percent(d.get("drawdown")), percent(d.get("threshold"))
    released, total = money(d.get("reserve_released")), money(d.get("total_value"))
    closed = quantity(d.get("positions_closed"))
    sms = (
        f"{SMS_PREFIX} EMERGENCY LIQUIDATION: drawdown {dd} > {limit}. {closed} positions closed, "
        f"reserve {released} released. Total {total}. {text(d.get('reason'))}"
    )
    subject = f"EMERGENCY LIQUIDATION: drawdown {dd}, total value {total}"
    body = _body(
        f"Emergency liquidation at {new_york_time(at)}: the drawdown passed the emergency threshold.",
        [
            ("Drawdown", dd),
            ("Threshold", limit),
            ("Positions closed", closed),
            ("Reserve released", released),
            ("Total value", total),
            ("Reason", text(d.get("reason"))),
        ],
        "The risk tier is now conservative. Review the positions before enabling larger risk again.",
    )
    return sms, subject, body


def _large_trade(d: Mapping[str, Any], at: datetime) -> Parts:
    ticker, pnl, pct = (
        text(d.get("ticker")),
        money(d.get("realized_pnl"), signed=True),
        percent(d.get("pnl_pct"), signed=True),
    )
    qty, entry, exit_ = quantity(d.get("quantity")), money(d.get("entry_price")), money(d.get("exit_price"))
    why = f" ({d['exit_reason']})" if d.get("exit_reason") else ""
    sms = f"{SMS_PREFIX} TRADE {ticker} {pnl} ({pct}): {qty} sh {entry} -> {exit_}{why}"
    subject = f"Large trade P&L: {ticker} {pnl} ({pct})"
    body = _body(
        f"A trade in {ticker} closed at {new_york_time(at)} with a large result.",
        [
            ("Ticker", ticker),
            ("Quantity", qty),
            ("Entry price", entry),
            ("Exit price", exit_),
            ("Realized P&L", pnl),
            ("Return", pct),
            ("Exit reason", text(d.get("exit_reason"))),
        ],
        "Realized P&L is also in the tax lots and the performance figures.",
    )
    return sms, subject, body


def _daily(d: Mapping[str, Any], at: datetime) -> Parts:
    day, total = text(d.get("session")), money(d.get("total_value"))
    pnl, pct = money(d.get("day_pnl"), signed=True), percent(d.get("day_pnl_pct"), signed=True)
    realized = money(d.get("realized_pnl"), signed=True)
    closed, wins, losses = (
        quantity(d.get("trades_closed")),
        quantity(d.get("wins")),
        quantity(d.get("losses")),
    )
    sms = (
        f"{SMS_PREFIX} DAY {day}: {total} ({pnl}, {pct}). Realized {realized}, {closed} closed "
        f"({wins}W/{losses}L), {quantity(d.get('open_positions'))} open. Reserve {money(d.get('reserve'))}. "
        f"Tier {text(d.get('risk_tier'))}"
    )
    subject = f"Daily summary {day}: {total} ({pnl}, {pct})"
    rows = [
        ("Total value", total),
        ("Day P&L", f"{pnl} ({pct})"),
        ("Realized P&L", realized),
        ("Trades closed", f"{closed} ({wins} won, {losses} lost)"),
        ("Open positions", quantity(d.get("open_positions"))),
        ("Active Pool", money(d.get("active_pool"))),
        ("Reserve Pool", money(d.get("reserve"))),
        ("Risk tier", text(d.get("risk_tier"))),
    ]
    # Not urgent (the owner may withdraw or rebalance), so in the email only: the SMS is full.
    if d.get("reserve_high_water"):
        rows.append(("Reserve high-water", text(d.get("reserve_high_water"))))
    body = _body(f"Trading day {day} is closed.", rows, "Details per trade are on the dashboard.")
    return sms, subject, body


def _weekly(d: Mapping[str, Any], at: datetime) -> Parts:
    span = f"{text(d.get('week_start'))}..{text(d.get('week_end'))}"
    total = money(d.get("total_value"))
    pnl, pct = money(d.get("week_pnl"), signed=True), percent(d.get("week_pnl_pct"), signed=True)
    win, sharpe, dd = percent(d.get("win_rate")), ratio(d.get("sharpe")), percent(d.get("max_drawdown"))
    closed = quantity(d.get("trades_closed"))
    sms = (
        f"{SMS_PREFIX} WEEK {span}: {total} ({pnl}, {pct}). {closed} closed, win {win}, Sharpe {sharpe}, "
        f"max DD {dd}. Tier {text(d.get('risk_tier'))}"
    )
    subject = f"Weekly digest {span}: {total} ({pnl}, {pct})"
    body = _body(
        f"The week {span} in figures.",
        [
            ("Total value", total),
            ("Week P&L", f"{pnl} ({pct})"),
            ("Realized P&L", money(d.get("realized_pnl"), signed=True)),
            ("Trades closed", closed),
            ("Win rate", win),
            ("Sharpe (30 sessions)", sharpe),
            ("Max drawdown", dd),
            ("Reserve Pool", money(d.get("reserve"))),
            ("Risk tier", text(d.get("risk_tier"))),
        ],
        "Details per trade are on the dashboard.",
    )
    return sms, subject, body


def _order_rejected(d: Mapping[str, Any], at: datetime) -> Parts:
    ticker, side, qty = text(d.get("ticker")), text(d.get("side")), quantity(d.get("quantity"))
    why = text(d.get("reject_reason"))
    purpose = text(d.get("order_reason"))
    cancelled = quantity(d.get("tranches_cancelled"))
    sms = f"{SMS_PREFIX} REJECTED {side} {qty} {ticker} ({purpose}): {why}"
    subject = f"Order rejected: {side} {qty} {ticker}"
    body = _body(
        f"The broker refused an order at {new_york_time(at)}; nothing of it was filled.",
        [
            ("Ticker", ticker),
            ("Side", side),
            ("Quantity", qty),
            ("Order for", purpose),
            ("Broker's reason", why),
            ("Later tranches cancelled", cancelled),
            ("Client order id", text(d.get("client_order_id"))),
        ],
        "The engine does not retry a refused order; a sell refused leaves the position held "
        "(its stop is still checked every tick).",
    )
    return sms, subject, body


def _reconciliation(d: Mapping[str, Any], at: datetime) -> Parts:
    kind, ticker = text(d.get("kind")), d.get("ticker")
    engine, broker = quantity(d.get("engine_figure")), quantity(d.get("broker_figure"))
    if kind == "cash":
        engine, broker = money(d.get("engine_figure")), money(d.get("broker_figure"))
    what = f"{kind} {ticker}" if ticker else kind
    paused = bool(d.get("pauses"))
    status = "ENTRIES PAUSED until you acknowledge" if paused else text(d.get("resolution"))
    sms = f"{SMS_PREFIX} RECONCILE {what}: engine {engine}, broker {broker}. {status}. {text(d.get('rule'))}"
    subject = f"Broker differs: {what} (engine {engine}, broker {broker})" + (
        "; new entries paused" if paused else ""
    )
    body = _body(
        f"Reconciliation with the broker at {new_york_time(at)} found a difference.",
        [
            ("Kind", kind),
            ("Ticker", text(ticker)),
            ("Engine's figure", engine),
            ("Broker's figure", broker),
            ("Resolution", text(d.get("resolution"))),
            ("Rule", text(d.get("rule"))),
            ("Order", text(d.get("client_order_id"))),
            ("Discrepancy id", text(d.get("discrepancy_id"))),
        ],
        "New entries stay paused until you acknowledge it on the dashboard (exits and stops still run)."
        if paused
        else "Nothing was overwritten silently: the difference and its correction are recorded.",
    )
    return sms, subject, body


_FORMATTERS: Mapping[E, Callable[[Mapping[str, Any], datetime], Parts]] = {
    E.CIRCUIT_BREAKER_TRIGGERED: _breaker_triggered,
    E.CIRCUIT_BREAKER_RESUMED: _breaker_resumed,
    E.RISK_TIER_CHANGED: _tier_changed,
    E.EMERGENCY_LIQUIDATION: _emergency,
    E.LARGE_TRADE_PNL: _large_trade,
    E.DAILY_SUMMARY: _daily,
    E.WEEKLY_DIGEST: _weekly,
    E.ORDER_REJECTED: _order_rejected,
    E.RECONCILIATION_DISCREPANCY: _reconciliation,
}


def render(event: NotificationEvent) -> Message:
    """The event's SMS, email subject and body, and JSON-safe data."""
    sms, subject, body = _FORMATTERS[event.event_type](event.data, event.occurred_at)
    return Message(
        event.event_type,
        event.occurred_at,
        fit_sms(sms),
        SUBJECT_PREFIX + " " + header_safe(subject),
        body,
        json_safe(event.data),
    )
