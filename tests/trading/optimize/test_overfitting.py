"""The overfitting measures against the papers' own worked figures and against statements made
independently of the implementation: scipy's moments, ranks and regression, Monte Carlo
simulations of the null hypothesis, and a brute-force CSCV written here from the paper's
definition (itertools over the blocks, pure-Python Sharpe ratios, scipy's average ranks)."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.trading.optimize.overfitting import (
    deflated_sharpe_of_trials,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratios,
)

# The Deflated Sharpe Ratio paper's numerical example: 100 trials, an annualised Sharpe ratio of
# 2.5 over five years of daily returns (T = 1250, 250 a year), annualised variance of the
# trials' Sharpe ratios 1/2, skewness -3, kurtosis 10. The paper prints E[max SR] = 0.1132
# (per day) and DSR = 0.9004.
PAPER_TRIALS, PAPER_T, PAPER_SKEW, PAPER_KURT = 100, 1250, -3.0, 10.0
PAPER_SR = 2.5 / math.sqrt(250)
PAPER_VARIANCE = 0.5 / 250


def test_the_dsr_papers_expected_maximum_sharpe() -> None:
    assert round(expected_maximum_sharpe(PAPER_VARIANCE, PAPER_TRIALS), 4) == 0.1132


def test_the_dsr_papers_deflated_sharpe_ratio() -> None:
    dsr = deflated_sharpe_ratio(PAPER_SR, PAPER_VARIANCE, PAPER_TRIALS, PAPER_T, PAPER_SKEW, PAPER_KURT)
    assert round(dsr, 4) == 0.9004


def test_the_psr_against_the_papers_printed_benchmark() -> None:
    # The DSR is the PSR against SR0; with SR0 as printed (rounded to 4 places) it is 0.900.
    psr = probabilistic_sharpe_ratio(PAPER_SR, 0.1132, PAPER_T, PAPER_SKEW, PAPER_KURT)
    assert psr == pytest.approx(0.9004, abs=1e-3)


@pytest.mark.parametrize("trials", [10, 100, 1000])
def test_expected_maximum_sharpe_matches_a_simulated_maximum(trials: int) -> None:
    # The paper's formula approximates E[max] of N independent N(0, V) draws; within a few %.
    rng = np.random.default_rng(trials)
    variance = 0.003
    draws = rng.normal(0.0, math.sqrt(variance), size=(200_000 // trials + 2000, trials))
    simulated = draws.max(axis=1).mean()
    assert expected_maximum_sharpe(variance, trials) == pytest.approx(simulated, rel=0.03)


def test_expected_maximum_grows_with_trials_and_one_trial_selects_nothing() -> None:
    values = [expected_maximum_sharpe(0.01, n) for n in (1, 2, 10, 100, 10_000)]
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:]))
    assert expected_maximum_sharpe(0.0, 500) == 0.0


@given(
    sr=st.floats(-0.5, 0.5),
    benchmark=st.floats(-0.5, 0.5),
    observations=st.integers(2, 5000),
)
@settings(max_examples=200, deadline=None)
def test_psr_of_normal_returns_is_los_asymptotic_test(sr: float, benchmark: float, observations: int) -> None:
    # For normal returns (skew 0, kurtosis 3) the PSR reduces to the normal approximation of
    # the Sharpe ratio's standard error, sqrt((1 + SR²/2) / (T - 1)) (Lo, 2002).
    expected = stats.norm.cdf((sr - benchmark) / math.sqrt((1 + sr**2 / 2) / (observations - 1)))
    assert probabilistic_sharpe_ratio(sr, benchmark, observations, 0.0, 3.0) == pytest.approx(
        expected, abs=1e-12
    )


@given(sr=st.floats(-0.5, 0.5), skew=st.floats(-3, 3), extra=st.floats(0, 20), t=st.integers(2, 3000))
@settings(max_examples=200, deadline=None)
def test_psr_is_half_at_its_own_benchmark_and_rises_with_the_sharpe(
    sr: float, skew: float, extra: float, t: int
) -> None:
    kurtosis = skew**2 + 1 + extra  # any distribution's kurtosis is at least skew² + 1
    assert probabilistic_sharpe_ratio(sr, sr, t, skew, kurtosis) == pytest.approx(0.5)
    assert 0.0 <= probabilistic_sharpe_ratio(sr, 0.0, t, skew, kurtosis) <= 1.0
    lower = probabilistic_sharpe_ratio(sr, sr + 0.01, t, skew, kurtosis)
    assert lower <= 0.5


def test_psr_is_calibrated_when_the_true_sharpe_equals_the_benchmark() -> None:
    # Under the null (true SR = benchmark) the PSR exceeds 0.95 in about 5% of track records.
    rng = np.random.default_rng(7)
    true_sr, t, runs = 0.1, 500, 4000
    samples = rng.normal(true_sr * 0.01, 0.01, size=(runs, t))
    above = 0
    for r in samples:
        sr = r.mean() / r.std(ddof=1)
        psr = probabilistic_sharpe_ratio(sr, true_sr, t, stats.skew(r), stats.kurtosis(r, fisher=False))
        above += psr > 0.95
    assert above / runs == pytest.approx(0.05, abs=0.015)


def test_psr_refuses_excess_kurtosis_and_short_records() -> None:
    with pytest.raises(ValueError, match="kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 100, -3.0, 0.0)
    with pytest.raises(ValueError, match="observations"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="trials"):
        expected_maximum_sharpe(0.1, 0)
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_maximum_sharpe(-0.1, 10)


def _sharpe(column: np.ndarray) -> float:
    values = [float(x) for x in column]
    if max(values) == min(values):
        return 0.0
    return statistics.fmean(values) / statistics.stdev(values)


def test_deflated_sharpe_of_trials_uses_the_best_trial_and_its_moments() -> None:
    rng = np.random.default_rng(11)
    returns = rng.standard_t(5, size=(750, 40)) * 0.01 + rng.normal(0, 0.0005, size=40)
    sharpes = [_sharpe(returns[:, n]) for n in range(40)]
    best = max(range(40), key=lambda n: sharpes[n])
    result = deflated_sharpe_of_trials(returns)
    assert result.best_trial == best
    assert result.observed_sharpe == pytest.approx(sharpes[best])
    assert result.sharpe_variance == pytest.approx(statistics.variance(sharpes))
    assert result.skewness == pytest.approx(stats.skew(returns[:, best]))
    assert result.kurtosis == pytest.approx(stats.kurtosis(returns[:, best], fisher=False))
    assert (result.trials, result.observations) == (40, 750)
    assert result.expected_max_sharpe == pytest.approx(
        expected_maximum_sharpe(statistics.variance(sharpes), 40)
    )
    assert result.dsr == pytest.approx(
        deflated_sharpe_ratio(
            sharpes[best],
            statistics.variance(sharpes),
            40,
            750,
            stats.skew(returns[:, best]),
            stats.kurtosis(returns[:, best], fisher=False),
        )
    )


def test_dsr_rarely_passes_noise_and_passes_a_real_edge() -> None:
    rng = np.random.default_rng(3)
    noise_passes, edge_passes, runs = 0, 0, 200
    for _ in range(runs):
        noise = rng.normal(0, 0.01, size=(1000, 50))
        noise_passes += deflated_sharpe_of_trials(noise).dsr > 0.95
        edged = noise.copy()
        edged[:, 17] += 0.0025  # a true per-period Sharpe of 0.25 (4 a year) over four years
        result = deflated_sharpe_of_trials(edged)
        edge_passes += result.dsr > 0.95 and result.best_trial == 17
    assert noise_passes / runs <= 0.05
    assert edge_passes / runs >= 0.95


def test_deflated_sharpe_of_trials_validates_its_matrix() -> None:
    with pytest.raises(ValueError, match="2 trials"):
        deflated_sharpe_of_trials(np.zeros((10, 1)))
    with pytest.raises(ValueError, match="NaN"):
        deflated_sharpe_of_trials(np.array([[0.1, np.nan], [0.2, 0.1], [0.0, 0.3]]))
    with pytest.raises(ValueError, match="2-D"):
        deflated_sharpe_of_trials(np.zeros(10))


# --- Probability of Backtest Overfitting ----------------------------------------------------


def brute_force_cscv(
    returns: np.ndarray, splits: int, score=_sharpe
) -> tuple[float, list[float], list[float]]:
    """CSCV from the paper's definition: (PBO, logits, OOS scores of the in-sample best)."""
    periods, trials = returns.shape
    blocks = [list(b) for b in np.array_split(range(periods), splits)]
    logits, oos_best = [], []
    for in_blocks in itertools.combinations(range(splits), splits // 2):
        is_rows = [i for b in in_blocks for i in blocks[b]]
        oos_rows = [i for b in range(splits) if b not in in_blocks for i in blocks[b]]
        is_scores = [score(returns[is_rows, n]) for n in range(trials)]
        oos_scores = [score(returns[oos_rows, n]) for n in range(trials)]
        best = max(range(trials), key=lambda n: (is_scores[n], -n))  # first on ties
        omega = stats.rankdata(oos_scores)[best] / (trials + 1)
        logits.append(math.log(omega / (1 - omega)))
        oos_best.append(oos_scores[best])
    return sum(x <= 0 for x in logits) / len(logits), logits, oos_best


@st.composite
def trial_matrices(draw) -> tuple[np.ndarray, int]:
    splits = draw(st.sampled_from([2, 4, 6]))
    periods = draw(st.integers(max(splits, 4), 30))
    trials = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    returns = rng.normal(draw(st.floats(-0.01, 0.01)), 0.01, size=(periods, trials))
    # Ties as real searches make them: identical settings (a duplicated column) and a setting
    # that never trades (a column of zeros), or one that trades only now and then.
    if draw(st.booleans()):
        returns[:, -1] = returns[:, 0]
    if draw(st.booleans()):
        returns[:, draw(st.integers(0, trials - 1))] = 0.0
    if draw(st.booleans()):
        column = draw(st.integers(0, trials - 1))
        returns[: periods // 2, column] = 0.0
    return returns, splits


@given(case=trial_matrices())
@settings(max_examples=150, deadline=None)
def test_pbo_matches_a_brute_force_cscv(case: tuple[np.ndarray, int]) -> None:
    returns, splits = case
    pbo, logits, oos_best = brute_force_cscv(returns, splits)
    result = probability_of_backtest_overfitting(returns, splits)
    assert result.pbo == pbo
    assert result.logits == pytest.approx(logits, abs=1e-9)
    assert result.combinations == math.comb(splits, splits // 2) == len(logits)
    assert result.probability_of_loss == sum(x < 0 for x in oos_best) / len(oos_best)
    assert 0.0 <= result.pbo <= 1.0
    trials = returns.shape[1]
    assert all(abs(x) <= math.log(trials) + 1e-12 for x in result.logits)


@given(case=trial_matrices())
@settings(max_examples=60, deadline=None)
def test_a_custom_metric_is_ranked_the_same_way(case: tuple[np.ndarray, int]) -> None:
    returns, splits = case
    pbo, logits, _ = brute_force_cscv(returns, splits, score=lambda c: statistics.fmean(c))
    result = probability_of_backtest_overfitting(returns, splits, metric=lambda m: m.mean(axis=0))
    assert result.pbo == pbo
    assert result.logits == pytest.approx(logits, abs=1e-9)


def test_the_papers_count_of_combinations_for_sixteen_splits() -> None:
    returns = np.random.default_rng(1).normal(0, 0.01, size=(160, 5))
    assert probability_of_backtest_overfitting(returns).combinations == 12_870


def test_the_block_moment_sharpe_equals_the_direct_one() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0003, 0.01, size=(403, 30))  # 403 rows: unequal blocks
    returns[:100, 3] = 0.0  # flat in some halves only
    returns[:, 4] = 0.0
    returns[:, 5] = 0.002
    fast = probability_of_backtest_overfitting(returns, 10)
    direct = probability_of_backtest_overfitting(returns, 10, metric=lambda m: sharpe_ratios(m))
    assert fast.pbo == direct.pbo
    assert fast.chosen == direct.chosen
    assert fast.in_sample == pytest.approx(direct.in_sample, rel=1e-9, abs=1e-12)
    assert fast.out_of_sample == pytest.approx(direct.out_of_sample, rel=1e-9, abs=1e-12)


def test_a_trial_with_a_real_edge_in_every_block_is_not_overfit() -> None:
    rng = np.random.default_rng(9)
    returns = rng.normal(0, 0.01, size=(1600, 40))
    returns[:, 12] += 0.006
    result = probability_of_backtest_overfitting(returns, 16)
    assert result.pbo == 0.0
    assert set(result.chosen) == {12}
    assert result.probability_of_loss == 0.0


def test_pure_noise_is_overfit_half_the_time() -> None:
    # The in-sample best of worthless trials lands anywhere out-of-sample: over many seeds the
    # PBO averages 1/2 and the logits centre on 0; the OOS score of the IS best falls with its
    # IS score (each trial's whole-sample score is fixed), so the slope is negative.
    rng = np.random.default_rng(2024)
    pbos, mean_logits, slopes = [], [], []
    for _ in range(200):
        result = probability_of_backtest_overfitting(rng.normal(0, 0.01, size=(240, 10)), 8)
        pbos.append(result.pbo)
        mean_logits.append(statistics.fmean(result.logits))
        slopes.append(result.degradation_slope)
    assert statistics.fmean(pbos) == pytest.approx(0.5, abs=0.06)
    assert statistics.fmean(mean_logits) == pytest.approx(0.0, abs=0.15)
    assert statistics.fmean(slopes) < 0


def test_degradation_slope_is_the_least_squares_slope() -> None:
    returns = np.random.default_rng(4).normal(0, 0.01, size=(300, 25))
    result = probability_of_backtest_overfitting(returns, 8)
    expected = stats.linregress(result.in_sample, result.out_of_sample).slope
    assert result.degradation_slope == pytest.approx(expected)


@given(seed=st.integers(0, 2**32 - 1), splits=st.sampled_from([2, 4, 8]))
@settings(max_examples=40, deadline=None)
def test_pbo_ignores_the_order_of_trials_and_of_blocks(seed: int, splits: int) -> None:
    rng = np.random.default_rng(seed)
    rows_per_block = int(rng.integers(2, 8))
    returns = rng.normal(0, 0.01, size=(splits * rows_per_block, 7))
    result = probability_of_backtest_overfitting(returns, splits)

    columns = rng.permutation(7)
    shuffled = probability_of_backtest_overfitting(returns[:, columns], splits)
    assert shuffled.pbo == result.pbo
    assert shuffled.logits == pytest.approx(result.logits)
    assert [columns[c] for c in shuffled.chosen] == list(result.chosen)

    # Moving whole blocks around (or reading time backwards) yields the same set of halves.
    blocks = np.split(returns, splits)
    for rows in (np.concatenate([blocks[i] for i in rng.permutation(splits)]), returns[::-1]):
        moved = probability_of_backtest_overfitting(rows, splits)
        assert moved.pbo == result.pbo
        assert sorted(moved.logits) == pytest.approx(sorted(result.logits))


@pytest.mark.parametrize(
    ("returns", "splits", "message"),
    [
        (np.zeros((20, 3)), 3, "even"),
        (np.zeros((20, 3)), 0, "even"),
        (np.zeros((20, 3)), True, "even"),
        (np.zeros((7, 3)), 8, "fewer than splits"),
        (np.zeros((3, 3)), 2, "at least 2"),
        (np.zeros((20, 1)), 4, "2 trials"),
        (np.where(np.eye(20, 3) == 1, np.nan, 0.0), 4, "NaN"),
        (np.zeros(20), 4, "2-D"),
    ],
)
def test_pbo_names_what_is_wrong_with_its_input(returns: np.ndarray, splits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(returns, splits)


def test_a_metric_must_score_every_trial() -> None:
    with pytest.raises(ValueError, match="metric"):
        probability_of_backtest_overfitting(np.ones((8, 3)), 2, metric=lambda m: m.mean())
