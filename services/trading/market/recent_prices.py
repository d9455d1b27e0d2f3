"""The last minutes of intraday prices of held tickers, for the rapid-move rule
(`rapid_move.py`, seed task 13.1). Only intraday bars (`1m`, `5m`) and a live feed's latest
prices (`last`) count: a daily feed has one price per session and cannot show a 15-minute
move. A price is known from its `ts` on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import asyncpg
import structlog

from services.trading.core import rapid_move
from services.trading.core.rapid_move import PricePoint, RapidMove, RapidMoveSettings

log = structlog.get_logger(__name__)


async def recent_prices(
    pool: asyncpg.Pool, tickers: Iterable[str], now: datetime, settings: RapidMoveSettings | None = None
) -> dict[str, list[PricePoint]]:
    s = settings or RapidMoveSettings()
    rows = await pool.fetch(
        """SELECT ticker, ts, close FROM price_bars
           WHERE ticker = ANY($1::text[]) AND interval IN ('1m', '5m', 'last') AND ts >= $2 AND ts <= $3
           ORDER BY ticker, ts""",
        sorted(set(tickers)),
        now - s.window,
        now,
    )
    history: dict[str, list[PricePoint]] = defaultdict(list)
    for r in rows:
        history[r["ticker"]].append(PricePoint(r["ts"], r["close"]))
    return dict(history)


async def rapid_moves(
    pool: asyncpg.Pool,
    tickers: Iterable[str],
    now: datetime,
    *,
    since: datetime | None = None,
    settings: RapidMoveSettings | None = None,
) -> tuple[RapidMove, ...]:
    """Held tickers whose price moved beyond the threshold since `since` (the last protective
    pass): the engine runs that pass again at once when any did."""
    moves = rapid_move.detect_rapid_moves(
        await recent_prices(pool, tickers, now, settings), now, since=since, settings=settings
    )
    for move in moves:
        log.warning("rapid price move", ticker=move.ticker, move=str(move.move), reason=move.reason)
    return moves
