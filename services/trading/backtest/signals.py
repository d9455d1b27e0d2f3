"""Where the backtest's recommendations come from, and when each one is decided.

Sources: the `recommendations` table (read by the store), a CSV file, or the sample momentum
signal (`momentum_signal.crossover_signals_of_closes`, run on the backtest's own bars). Like the live
engine's poll, only `buy`/`sell` recommendations in `paper_eligible`/`live_eligible` mode are
taken.

When: a recommendation is decided at the first instant the engine could see it inside a
trading window: at `generated_at` when that falls inside one, else when the next window opens
(09:45 New York). One stamped at session D's close is therefore decided at D+1 09:45 with D+1's
open as the price (what the price book reports during a session from daily bars). Its market
orders fill at that same open when the decision was taken at the window's opening (the open
stands in for the 09:45 price daily bars do not have), and at the next session's open when it
was taken later in a session. Recommendations due together are decided highest confidence
first, as the engine's poll orders them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from services.shared.schemas import RecommendationMode
from services.trading.backtest.market import MarketData
from services.trading.core.models import Recommendation
from services.trading.core.trading_window import (
    NEW_YORK,
    WINDOW_BUFFER,
    is_within_trading_window,
    next_window_open,
    session_times,
)
from services.trading.market.momentum_signal import FAST_WINDOW, SLOW_WINDOW, crossover_signals_of_closes

ACTIONS = ("buy", "sell")
MODES = (RecommendationMode.PAPER_ELIGIBLE.value, RecommendationMode.LIVE_ELIGIBLE.value)
MAX_REPORTED_PROBLEMS = 10


class RecommendationCsvError(ValueError):
    """The recommendations file cannot be used; the message lists bad lines."""


@dataclass(frozen=True, slots=True)
class ScheduledRecommendation:
    rec: Recommendation
    decide_at: datetime
    session: int  # index of the decision's session in the market data
    fill_session: int  # where its market orders fill (may be one past the last session)


def eligible(rec: Recommendation) -> bool:
    return str(rec.action) in ACTIONS and str(rec.mode) in MODES


def schedule(
    recs: Iterable[Recommendation], market: MarketData, first: int, last: int
) -> dict[int, list[ScheduledRecommendation]]:
    """Recommendations decided in sessions [first, last], grouped by session, in decision order."""
    if not market.sessions:
        return {}
    earliest = market.session_open[max(first - 1, 0)] if first > 0 else None
    latest = market.session_close[last]
    due: dict[int, list[ScheduledRecommendation]] = {}
    when: dict[datetime, tuple[datetime, int, int] | None] = {}  # most recommendations share a stamp
    for rec in recs:
        if not eligible(rec) or rec.generated_at >= latest or (earliest and rec.generated_at < earliest):
            continue
        if rec.generated_at not in when:
            when[rec.generated_at] = _decision_time(rec.generated_at, market, first, last)
        timing = when[rec.generated_at]
        if timing is not None:
            at, session, fill_session = timing
            due.setdefault(session, []).append(ScheduledRecommendation(rec, at, session, fill_session))
    for batch in due.values():
        batch.sort(key=lambda s: (s.decide_at, -_sortable(s.rec.confidence), s.rec.generated_at, s.rec.id))
    return due


def _decision_time(
    generated_at: datetime, market: MarketData, first: int, last: int
) -> tuple[datetime, int, int] | None:
    at = generated_at if is_within_trading_window(generated_at) else next_window_open(generated_at)
    day = at.astimezone(NEW_YORK).date()
    session = market.session_index(day)
    if not first <= session <= last or market.sessions[session] != day:
        return None
    opening = session_times(day)[0] + WINDOW_BUFFER  # type: ignore[index]
    return at, session, session if at == opening else session + 1


def _sortable(confidence: float) -> float:
    return confidence if isinstance(confidence, (int, float)) and math.isfinite(confidence) else -1.0


# -- the sample momentum signal -----------------------------------------------------------


class _Stamps(Sequence[datetime]):
    """The close instants of one ticker's existing bars, looked up only where read (at
    crossings) instead of building a list per ticker."""

    def __init__(self, present: np.ndarray, closes_at: Sequence[datetime]) -> None:
        self.present, self.closes_at = present, closes_at

    def __len__(self) -> int:
        return len(self.present)

    def __getitem__(self, i):  # type: ignore[override]
        return self.closes_at[self.present[i]]


def momentum_recommendations(
    market: MarketData,
    rows: Iterable[int] | None = None,
    fast: int = FAST_WINDOW,
    slow: int = SLOW_WINDOW,
) -> list[Recommendation]:
    """The momentum signal (SMA 10/30 crossover, or `fast`/`slow` as a parameter search tunes
    them) run on each ticker's bars, as recommendations numbered in time order."""
    drafts = []
    for row in range(len(market.tickers)) if rows is None else rows:
        present = np.flatnonzero(market.valid[row])
        drafts += crossover_signals_of_closes(
            market.tickers[row],
            market.close[row, present],
            _Stamps(present, market.session_close),
            fast,
            slow,
        )
    drafts.sort(key=lambda d: (d.generated_at, d.ticker, d.action))
    # float(): the signal hands out numpy floats, which the sizer cannot read as decimals; a
    # recommendation read back from the database is a plain float.
    return [
        Recommendation(
            i, d.ticker, d.action, float(d.confidence), d.mode, d.trend_window, d.thesis, d.generated_at
        )
        for i, d in enumerate(drafts, start=1)
    ]


# -- a CSV of recommendations --------------------------------------------------------------


def _instant(row: dict[str, str]) -> datetime:
    if row.get("generated_at"):
        at = datetime.fromisoformat(row["generated_at"].strip())
        if at.tzinfo is None:
            raise ValueError(f"generated_at {row['generated_at']!r} needs a UTC offset")
        return at
    if not row.get("date"):
        raise ValueError("needs generated_at (ISO-8601 with offset) or date (YYYY-MM-DD)")
    day = date.fromisoformat(row["date"].strip())
    times = session_times(day)
    if times is None:
        raise ValueError(f"{day} is not an NYSE trading session")
    return times[1]  # a dated recommendation is known at that session's close


def _parse(row: dict[str, str], number: int) -> Recommendation:
    ticker = (row.get("ticker") or "").strip().upper()
    if not ticker:
        raise ValueError("ticker is empty")
    action = (row.get("action") or "").strip().lower()
    try:
        confidence = float((row.get("confidence") or "").strip())
    except ValueError:
        raise ValueError(f"confidence {row.get('confidence')!r} is not a number") from None
    rec_id = int(row["id"]) if (row.get("id") or "").strip() else number
    return Recommendation(
        rec_id,
        ticker,
        action,
        confidence,
        (row.get("mode") or RecommendationMode.PAPER_ELIGIBLE.value).strip(),
        (row.get("trend_window") or "5d").strip(),
        (row.get("thesis") or "").strip(),
        _instant(row),
    )


def read_recommendations_csv(path: Path) -> list[Recommendation]:
    """Every recommendation in the file, or `RecommendationCsvError` naming the bad lines.
    Columns: ticker, action, confidence and generated_at or date; optional id, mode
    (default paper_eligible), trend_window, thesis."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise RecommendationCsvError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in ("ticker", "action", "confidence") if c not in header]
        if not {"generated_at", "date"} & set(header):
            missing.append("generated_at or date")
        if missing:
            raise RecommendationCsvError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        recs, problems = [], []
        for row in reader:
            try:
                recs.append(_parse(row, reader.line_num - 1))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        more = (
            f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)"
            if len(problems) > MAX_REPORTED_PROBLEMS
            else ""
        )
        raise RecommendationCsvError(
            f"{path}: {len(problems)} bad row(s): {'; '.join(problems[:MAX_REPORTED_PROBLEMS])}{more}"
        )
    if not recs:
        raise RecommendationCsvError(f"{path}: no recommendations in the file")
    return recs
