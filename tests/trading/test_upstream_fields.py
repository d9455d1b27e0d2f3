"""The upstream recommendation's fields (issue 12, defect 2): what the engine cannot act on is a
skip with the reason, and the decision keeps every field in a form PostgreSQL and the order job
accept, whatever the upstream wrote."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.orders import OrderJob
from services.shared.schemas import OrderReason, OrderSide
from services.shared.tickers import TICKER_MAX_LENGTH, is_ticker
from services.trading.core import upstream_fields
from services.trading.core.decision import decide
from services.trading.live.outbox import order_job
from tests.trading.test_decision import IN_WINDOW, MARKET, _ctx, _rec


@pytest.mark.parametrize("ticker", ["A", "XYZ", "BRK.B", "BF-B", "0700", "ABCDEFGHIJKLMNOP"])
def test_symbols_are_tickers(ticker) -> None:
    assert is_ticker(ticker) and upstream_fields.field_problem(_rec(ticker=ticker)) is None


@pytest.mark.parametrize(
    "ticker", ["", "ABCDEFGHIJKLMNOPQ", "aapl", "AAPL ", "AAPL\n", ".A", "-A", "A/B", "ÄPFEL", "X" * 3000]
)
def test_anything_else_is_a_skip_on_the_ticker_check(ticker) -> None:
    problem = upstream_fields.field_problem(_rec(ticker=ticker))
    assert problem is not None and problem.check == "ticker"
    assert (
        f"({len(ticker)} characters) is not a ticker symbol" in problem.detail and len(problem.detail) < 200
    )


def test_the_order_job_takes_exactly_the_tickers_the_engine_accepts() -> None:
    """One definition of a ticker: an accepted recommendation can always become an order job."""
    from decimal import Decimal

    from services.trading.core.decision import OrderIntent

    for ticker, accepted in [("ABCDEFGHIJKLMNOP", True), ("ABCDEFGHIJKLMNOPQ", False), ("aapl", False)]:
        intent = OrderIntent(ticker, OrderSide.BUY, Decimal(1), OrderReason.ENTRY, IN_WINDOW)
        try:
            job = order_job(uuid.uuid4(), intent, "paper", IN_WINDOW)
        except ValueError:
            job = None
        assert (job is not None) is accepted is is_ticker(ticker)
        if job is not None:
            assert OrderJob.model_validate_json(job.model_dump_json()) == job


def test_an_unknown_trend_window_is_a_skip() -> None:
    """Unknown, the window could be an intraday one: bought as a swing trade it would be held for days."""
    outcome = decide(_rec(window="3h"), MARKET, _ctx(), now=IN_WINDOW, decision_id=uuid.uuid4())
    assert outcome.failed_check == "trend_window" and "trend window '3h' is not one of" in outcome.skip_reason


def test_a_long_thesis_is_kept_in_the_trace_in_part() -> None:
    rec = replace(_rec(), thesis="why " * 10_000)
    thesis = decide(rec, MARKET, _ctx(), now=IN_WINDOW, decision_id=uuid.uuid4()).decision.decision_trace[
        "recommendation"
    ]["thesis"]
    assert len(thesis) == upstream_fields.THESIS_RECORD_MAX and thesis.endswith("…")
    assert rec.thesis.startswith(thesis[:-1])


@settings(max_examples=300, deadline=None)
@given(
    ticker=st.one_of(
        st.text(max_size=40),
        st.text(alphabet="ABCXYZ019.-", min_size=1, max_size=30),
        st.text(min_size=2000, max_size=4000),
    ),
    action=st.one_of(st.sampled_from(["buy", "sell"]), st.text(max_size=3000)),
    window=st.one_of(st.sampled_from(["intraday", "1d", "5d", "20d"]), st.text(max_size=3000)),
)
def test_every_decision_keeps_fields_the_database_and_the_order_job_accept(ticker, action, window) -> None:
    """Whatever text the upstream writes, the decision stores a ticker of at most 16 characters
    that names a ticker only when the upstream's is one, a bounded trace and reason, and acts
    only on a ticker an order job takes."""
    rec = _rec(ticker=ticker, action=action, window=window)
    outcome = decide(rec, MARKET, _ctx(), now=IN_WINDOW, decision_id=uuid.uuid4())
    stored = outcome.decision.ticker
    assert len(stored) <= TICKER_MAX_LENGTH
    assert is_ticker(stored) == is_ticker(ticker) and (stored == ticker) == (len(ticker) <= TICKER_MAX_LENGTH)
    recommendation = outcome.decision.decision_trace["recommendation"]
    assert all(
        len(str(recommendation[k])) <= upstream_fields.SHOWN_MAX for k in ("ticker", "action", "trend_window")
    )
    assert outcome.skip_reason is None or len(outcome.skip_reason) < 1000
    for intent in outcome.orders:
        order_job(outcome.decision.id, intent, "paper", IN_WINDOW)  # raises if the order job refuses it
