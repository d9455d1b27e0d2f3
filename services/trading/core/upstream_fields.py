"""The upstream recommendation's fields, checked once as a row enters the decision core
(docs/contracts.md section 3, issue 12).

The upstream pipeline writes what it likes into `recommendations`: any text for the ticker,
action, mode and trend window, any double for the confidence. A field the engine cannot act on
is a skip with the reason, and the decision keeps every field in a form PostgreSQL stores (a
ticker within the symbol limit, a bounded thesis), so no row can be refused on every tick and
hold back the rows behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.shared.schemas import RecommendationAction, RecommendationMode, TrendWindow
from services.shared.tickers import TICKER_CHARACTERS, TICKER_MAX_LENGTH, is_ticker
from services.trading.core.models import Recommendation

ACTIONS = frozenset({RecommendationAction.BUY.value, RecommendationAction.SELL.value})
ELIGIBLE_MODES = frozenset({RecommendationMode.PAPER_ELIGIBLE.value, RecommendationMode.LIVE_ELIGIBLE.value})
TREND_WINDOWS = frozenset(w.value for w in TrendWindow)
# The thesis is the upstream's explanation, kept in each decision's trace for the owner to
# read; the recommendation row keeps it whole.
THESIS_RECORD_MAX = 2000
SHOWN_MAX = 40  # an unusable value is quoted this far in a skip reason
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """Why the engine cannot act on the row: the check that refused and what it found."""

    check: str
    detail: str


def excerpt(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked as cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def recorded_ticker(ticker: str) -> str:
    """The ticker as the decision stores it: a symbol as it is; anything longer than a symbol
    cut to the symbol's length, ending in '…' (outside the symbol's characters, so it can never
    name a real ticker), so the indexed column always takes it."""
    return excerpt(ticker, TICKER_MAX_LENGTH)


def _shown(value: object) -> str:
    return repr(excerpt(str(value), SHOWN_MAX))


def field_problem(rec: Recommendation) -> FieldProblem | None:
    """The first field of `rec` the engine cannot act on, or None."""
    action = str(rec.action)
    if action not in ACTIONS:
        return FieldProblem("action", f"action {_shown(action)} is neither buy nor sell")
    if str(rec.mode) not in ELIGIBLE_MODES:
        return FieldProblem("mode", f"mode {_shown(rec.mode)} is not paper_eligible or live_eligible")
    if (
        not isinstance(rec.confidence, (int, float, Decimal))
        or not math.isfinite(rec.confidence)
        or not 0 <= rec.confidence <= 1
    ):
        return FieldProblem("confidence", f"confidence {rec.confidence!r} is not a number in [0, 1]")
    if not is_ticker(rec.ticker):
        return FieldProblem(
            "ticker",
            f"ticker {_shown(rec.ticker)} ({len(str(rec.ticker))} characters) is not a "
            f"ticker symbol: 1 to {TICKER_MAX_LENGTH} of {TICKER_CHARACTERS}",
        )
    if str(rec.trend_window) not in TREND_WINDOWS:
        # Unknown, the signal could be an intraday one: bought as a swing trade, it would be held for days.
        return FieldProblem(
            "trend_window",
            f"trend window {_shown(rec.trend_window)} is not one of {', '.join(sorted(TREND_WINDOWS))}",
        )
    return None


def trace_fields(rec: Recommendation) -> dict[str, Any]:
    """The recommendation as the decision trace shows it, every text field bounded."""
    return {
        "id": rec.id,
        "ticker": recorded_ticker(rec.ticker),
        "action": excerpt(str(rec.action), SHOWN_MAX),
        "confidence": rec.confidence,
        "trend_window": excerpt(str(rec.trend_window), SHOWN_MAX),
        "thesis": excerpt(rec.thesis, THESIS_RECORD_MAX),
        "generated_at": rec.generated_at,
    }
