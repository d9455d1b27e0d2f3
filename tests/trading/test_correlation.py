"""Correlation matrix (seed task 11.1; feeds Property 2 of the position sizer)."""

from __future__ import annotations

import gzip
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.correlation import (
    MIN_OVERLAP,
    CorrelationMatrix,
    centred_returns,
    compute_correlation_matrix,
    correlation_from_prices,
    correlations_with_first,
)
from services.trading.core.models import OpenPosition

START = date(2024, 1, 1)


def position(ticker: str, quantity: str = "10", price: str = "100") -> OpenPosition:
    return OpenPosition(
        ticker=ticker,
        quantity=Decimal(quantity),
        entry_price=Decimal(price),
        current_price=Decimal(price),
        sector="Tech",
        stop_loss_price=Decimal(price) * Decimal("0.9"),
        take_profit_price=Decimal(price) * Decimal("1.2"),
        signal_confidence=Decimal("0.7"),
    )


def reference_correlation(closes_a: dict, closes_b: dict, sessions: list[date]) -> float:
    """The rule, written out pair by pair: returns only between consecutive sessions that
    both have a close, then numpy.corrcoef on the days both tickers have a return."""

    def returns(closes: dict) -> dict[date, float]:
        out = {}
        for prev, day in zip(sessions, sessions[1:]):
            if prev in closes and day in closes:
                out[day] = closes[day] / closes[prev] - 1.0
        return out

    ra, rb = returns(closes_a), returns(closes_b)
    common = sorted(set(ra) & set(rb))
    if len(common) < MIN_OVERLAP:
        return 0.0
    xa = np.array([ra[d] for d in common])
    xb = np.array([rb[d] for d in common])
    if np.ptp(xa) == 0 or np.ptp(xb) == 0:
        return 0.0
    return float(np.corrcoef(xa, xb)[0, 1])


@st.composite
def price_histories(draw):
    n_days = draw(st.integers(10, 60))
    sessions = [START + timedelta(days=i) for i in range(n_days)]
    histories = {}
    for ticker in ("AAA", "BBB", "CCC"):
        # Daily moves of -5%..+5% in whole basis points: never degenerate by accident.
        steps = draw(st.lists(st.integers(-500, 500), min_size=n_days, max_size=n_days))
        present = draw(st.lists(st.booleans(), min_size=n_days, max_size=n_days))
        price, closes = 100.0, {}
        for day, step, here in zip(sessions, steps, present):
            price *= 1 + step / 10_000
            if here or draw(st.booleans()):
                closes[day] = price
        histories[ticker] = closes
    return sessions, histories


@settings(max_examples=60, deadline=None)
@given(price_histories())
def test_matrix_matches_numpy_corrcoef_on_each_pairs_overlap(data):
    """Property 2 (input): each pair's coefficient is numpy.corrcoef of the two tickers'
    returns over their common days; too little overlap or a flat series reads 0.0."""
    sessions, histories = data
    matrix = compute_correlation_matrix(histories, as_of=sessions[-1])
    # The window's sessions are the dates any ticker traded.
    traded = sorted({d for closes in histories.values() for d in closes})
    for a in histories:
        for b in histories:
            got = matrix.get_correlation(a, b)
            if a == b:
                assert got == 1.0
                continue
            expected = reference_correlation(histories[a], histories[b], traded)
            assert got == pytest.approx(expected, abs=1e-9)
            assert got == matrix.get_correlation(b, a)
            assert -1.0 <= got <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["AAA", "BBB", "CCC", "DDD"]),
        st.integers(0, 10_000),
        max_size=4,
    ),
    st.sampled_from(["AAA", "BBB", "CCC", "DDD", "ZZZ"]),
    st.dictionaries(
        st.tuples(
            st.sampled_from(["AAA", "BBB", "CCC", "DDD"]), st.sampled_from(["AAA", "BBB", "CCC", "DDD"])
        ),
        st.floats(-1, 1),
        max_size=8,
    ),
)
def test_portfolio_correlation_is_market_value_weighted_mean(quantities, candidate, pairs):
    """Property 2 (input): c = sum(mv_i * corr(candidate, i)) / sum(mv_i) over the other
    holdings; unknown pairs count as 0.0; no other holdings gives 0.0."""
    pairs = {k: v for k, v in pairs.items() if k[0] != k[1]}
    matrix = CorrelationMatrix.from_pairs(pairs)
    positions = [position(t, str(q)) for t, q in quantities.items()]

    def corr(a, b):
        if a == b:
            return 1.0
        # from_pairs keeps the last value written for a pair, in either order.
        value = 0.0
        for (x, y), c in pairs.items():
            if {x, y} == {a, b}:
                value = c
        return value

    others = [p for p in positions if p.ticker != candidate]
    weight = sum(float(p.market_value) for p in others)
    expected = (
        sum(float(p.market_value) * corr(candidate, p.ticker) for p in others) / weight if weight else 0.0
    )
    assert matrix.get_portfolio_correlation(candidate, positions) == pytest.approx(expected, abs=1e-12)


def test_missing_days_use_only_common_returns():
    """A ticker missing sessions loses the returns around the gap; the pair is computed on
    what both still have, and matches numpy.corrcoef on exactly those days."""
    rng = np.random.default_rng(7)
    sessions = [START + timedelta(days=i) for i in range(90)]
    base = np.cumprod(1 + rng.normal(0, 0.01, 90)) * 50
    other = (
        np.cumprod(1 + 0.5 * np.diff(np.log(base), prepend=np.log(base[0])) + rng.normal(0, 0.01, 90)) * 80
    )
    a = {d: float(p) for d, p in zip(sessions, base)}
    b = {d: float(p) for i, (d, p) in enumerate(zip(sessions, other)) if i % 7 != 3}
    matrix = compute_correlation_matrix({"A": a, "B": b}, as_of=sessions[-1])
    expected = reference_correlation(a, b, sessions)
    assert matrix.get_correlation("A", "B") == pytest.approx(expected, abs=1e-12)
    assert matrix.get_correlation("A", "B") > 0.2  # they share a driver


def test_short_overlap_is_unknown_and_reads_zero():
    sessions = [START + timedelta(days=i) for i in range(90)]
    a = {d: 100 + i + (i % 3) for i, d in enumerate(sessions)}
    b = {d: 50 + (i % 5) for i, d in enumerate(sessions) if i >= 90 - MIN_OVERLAP}  # 19 returns
    matrix = compute_correlation_matrix({"A": a, "B": b}, as_of=sessions[-1])
    assert not matrix.is_known("A", "B")
    assert matrix.get_correlation("A", "B") == 0.0
    assert matrix.get_correlation("A", "NEVER_SEEN") == 0.0
    assert matrix.get_correlation("NEVER_SEEN", "NEVER_SEEN") == 1.0


def test_flat_series_is_unknown():
    sessions = [START + timedelta(days=i) for i in range(40)]
    a = {d: 100.0 + (i % 4) for i, d in enumerate(sessions)}
    flat = {d: 10.0 for d in sessions}
    assert (
        compute_correlation_matrix({"A": a, "F": flat}, as_of=sessions[-1]).get_correlation("A", "F") == 0.0
    )


def test_window_is_last_lookback_sessions_on_or_before_as_of():
    sessions = [START + timedelta(days=i) for i in range(200)]
    rng = np.random.default_rng(1)
    a = {d: float(p) for d, p in zip(sessions, np.cumprod(1 + rng.normal(0, 0.01, 200)))}
    b = {d: float(p) for d, p in zip(sessions, np.cumprod(1 + rng.normal(0, 0.01, 200)))}
    as_of = sessions[150]
    window = [d for d in sessions if d <= as_of][-90:]
    matrix = compute_correlation_matrix({"A": a, "B": b}, as_of=as_of)
    sub = lambda s: {d: s[d] for d in window}  # noqa: E731
    assert matrix.get_correlation("A", "B") == pytest.approx(
        reference_correlation(sub(a), sub(b), window), abs=1e-12
    )


def test_held_candidate_is_left_out_of_its_own_correlation():
    matrix = CorrelationMatrix.from_pairs({("A", "B"): 0.4})
    positions = [position("A", "100"), position("B", "10")]
    assert matrix.get_portfolio_correlation("A", positions) == pytest.approx(0.4)
    assert matrix.get_portfolio_correlation("A", [position("A")]) == 0.0
    assert CorrelationMatrix.empty().get_portfolio_correlation("A", positions) == 0.0


def test_pairs_round_trip_through_the_cache_shape():
    sessions = [START + timedelta(days=i) for i in range(90)]
    rng = np.random.default_rng(3)
    closes = {
        t: {d: float(p) for d, p in zip(sessions, np.cumprod(1 + rng.normal(0, 0.01, 90)))} for t in "ABCD"
    }
    matrix = compute_correlation_matrix(closes, as_of=sessions[-1])
    rebuilt = CorrelationMatrix.from_pairs({(a, b): c for a, b, c in matrix.pairs()})
    for a in "ABCD":
        for b in "ABCD":
            assert rebuilt.get_correlation(a, b) == pytest.approx(matrix.get_correlation(a, b), abs=1e-15)


def test_matrix_is_read_only():
    matrix = CorrelationMatrix.from_pairs({("A", "B"): 0.1})
    with pytest.raises(ValueError):
        matrix.values[0, 1] = 0.9


STOCKS = Path(__import__("bokeh_sampledata").__file__).parent / "_data" / "stocks.csv.gz"


def test_real_closes_match_pandas_pairwise_corr():
    """On real daily closes, the vectorised result equals pandas' pairwise-complete
    `DataFrame.corr(min_periods=20)` of `pct_change(fill_method=None)` returns."""
    import pandas as pd

    with gzip.open(STOCKS, "rt") as fh:
        frame = pd.read_csv(fh, parse_dates=["Date"])
    wide = frame.pivot(index="Date", columns="Ticker", values="Close").sort_index().iloc[-91:]
    wide.iloc[::9, 0] = np.nan  # punch holes so the masks matter
    ours = correlation_from_prices(wide.to_numpy(), min_overlap=20)
    theirs = wide.pct_change(fill_method=None).iloc[1:].corr(min_periods=20).to_numpy()
    np.fill_diagonal(theirs, 1.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-10, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(price_histories())
def test_one_candidate_against_a_book_reads_as_the_pairwise_rule(data):
    """The backtest's one-row path (`centred_returns` + `correlations_with_first`) gives each
    pair what the rule written out pair by pair gives."""
    sessions, histories = data
    traded = sorted({d for closes in histories.values() for d in closes})
    tickers = list(histories)
    prices = np.array([[histories[t].get(d, np.nan) for t in tickers] for d in traded], dtype=float)
    prices = prices.reshape(len(traded), len(tickers))
    x, m = centred_returns(prices)
    found = correlations_with_first(x, m, min_overlap=MIN_OVERLAP)
    for k, other in enumerate(tickers[1:]):
        got = float(found[k]) if np.isfinite(found[k]) else 0.0
        assert got == pytest.approx(
            reference_correlation(histories[tickers[0]], histories[other], traded), abs=1e-9
        )


def _vectorised_correlations_with_first(x: np.ndarray, m: np.ndarray, min_overlap: int) -> np.ndarray:
    """The pair figures over whole arrays (how the backtest worked them until issue 16)."""
    a, mask_a, b, mask_b = x[:, 0], m[:, 0], x[:, 1:], m[:, 1:]
    n = mask_a @ mask_b
    sum_a, sum_b = a @ mask_b, mask_a @ b
    sum_sq_a, sum_sq_b = (a * a) @ mask_b, mask_a @ (b * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = a @ b - sum_a * sum_b / n
        var_a = sum_sq_a - sum_a * sum_a / n
        var_b = sum_sq_b - sum_b * sum_b / n
        corr = cov / np.sqrt(var_a * var_b)
    scale = np.maximum(sum_sq_a, sum_sq_b)
    flat = (var_a <= 1e-12 * scale) | (var_b <= 1e-12 * scale) | (var_a <= 0) | (var_b <= 0)
    return np.where((n >= max(min_overlap, 2)) & ~flat, np.clip(corr, -1.0, 1.0), np.nan)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(2, 95),
    st.sampled_from([1e-9, 0.01, 0.2]),
    st.floats(0, 0.6),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
)
def test_the_pair_figures_in_plain_floats_are_the_vectorised_ones_to_the_bit(
    others, sessions, volatility, holes, min_overlap, seed
):
    """`correlations_with_first` works each pair's figures in plain floats: the same numbers,
    bit for bit (sign of zero included), as the same operations over whole arrays."""
    rng = np.random.default_rng(seed)
    prices = np.cumprod(1 + rng.normal(0, volatility, (sessions, others + 1)), axis=0)
    prices[rng.random(prices.shape) < holes] = np.nan
    x, m = centred_returns(prices)
    found = np.array(correlations_with_first(x, m, min_overlap=min_overlap), dtype=np.float64)
    expected = _vectorised_correlations_with_first(x, m, min_overlap)
    assert np.array_equal(np.isnan(found), np.isnan(expected))
    known = ~np.isnan(expected)
    assert np.array_equal(found[known].view(np.int64), expected[known].view(np.int64))
