"""Rapid price moves (seed task 13.1): a held position whose price moved more than 5% within
15 minutes is re-evaluated at once (stops, crossings, single-position breaker) instead of
waiting for the next scheduled stop check.

Pure: the recent prices go in, the moves come out; reading them is `recent_prices.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class RapidMoveSettings:
    threshold_pct: Decimal = Decimal("0.05")
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class PricePoint:
    at: datetime
    price: Decimal


@dataclass(frozen=True, slots=True)
class RapidMove:
    ticker: str
    from_price: Decimal
    to_price: Decimal
    move: Decimal
    at: datetime
    reason: str


def detect_rapid_move(
    ticker: str,
    history: Sequence[PricePoint],
    now: datetime,
    *,
    since: datetime | None = None,
    settings: RapidMoveSettings | None = None,
) -> RapidMove | None:
    """The latest price in the window `[now - 15 min, now]` against every earlier one in it:
    a move of more than 5% either way (strict, as the breakers' thresholds are). `since` is
    when the position was last checked: a latest price no newer was already acted on."""
    s = settings or RapidMoveSettings()
    require_aware(now, "now")
    window = sorted((p for p in history if now - s.window <= p.at <= now and p.price > 0), key=lambda p: p.at)
    if len(window) < 2:
        return None
    latest = window[-1]
    if since is not None and latest.at <= since:
        return None
    reference = max(window[:-1], key=lambda p: abs(latest.price - p.price) / p.price)
    move = (latest.price - reference.price) / reference.price
    if not abs(move) > s.threshold_pct:
        return None
    reason = (
        f"{ticker} moved {move:+.2%} ({reference.price} at {reference.at.isoformat()} -> {latest.price} at "
        f"{latest.at.isoformat()}), beyond {s.threshold_pct:.0%} within {s.window}: re-evaluated at once"
    )
    return RapidMove(ticker, reference.price, latest.price, move, latest.at, reason)


def detect_rapid_moves(
    histories: Mapping[str, Sequence[PricePoint]],
    now: datetime,
    *,
    since: datetime | None = None,
    settings: RapidMoveSettings | None = None,
) -> tuple[RapidMove, ...]:
    moves = (
        detect_rapid_move(t, h, now, since=since, settings=settings) for t, h in sorted(histories.items())
    )
    return tuple(m for m in moves if m is not None)
