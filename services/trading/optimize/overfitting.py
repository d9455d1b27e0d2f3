"""How much of a parameter search's best result is luck: the Deflated Sharpe Ratio and the
Probability of Backtest Overfitting, computed from the trials' own returns.

A search that tries N settings and reports the best one reports the maximum of N noisy
estimates, which is high even when every setting is worthless. Two measures from the
literature answer "is the winner better than the luck of the draw?":

- **Deflated Sharpe Ratio** (D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio
  Management, 2014). The Probabilistic Sharpe Ratio (Bailey and López de Prado, "The Sharpe
  Ratio Efficient Frontier", Journal of Risk, 2012) is the probability that the true Sharpe
  ratio exceeds a benchmark, given the track record's length, skewness and kurtosis. The DSR is
  the PSR against the Sharpe ratio the best of N worthless trials is expected to show, which
  grows with N and with how much the trials' Sharpe ratios vary.
- **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation
  (D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The Probability of Backtest
  Overfitting", Journal of Computational Finance, 2015). The periods are cut into S blocks;
  for every choice of S/2 blocks as in-sample (the other half out-of-sample) the in-sample best
  trial is ranked among all trials out-of-sample. PBO is the share of choices in which it lands
  in the bottom half: about 0.5 when the selection is worth nothing, near 0 when it carries.

Every Sharpe ratio here is per period (not annualised): mean over sample standard deviation
(ddof=1), and 0.0 for a series without variation, as the performance tracker reports it.
Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_MASCHERONI = 0.5772156649015329
_NORMAL = NormalDist()

Metric = Callable[[np.ndarray], np.ndarray]


def sharpe_ratios(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio of each column of a periods × trials matrix.

    Mean over the sample standard deviation (ddof=1); a column without variation (ptp == 0,
    e.g. a setting that never traded) scores 0.0 rather than inf or NaN.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError("returns must be a 2-D periods × trials matrix with at least 2 periods")
    mean = r.mean(axis=0)
    std = r.std(axis=0, ddof=1)
    flat = np.ptp(r, axis=0) == 0
    safe = np.where(flat | ~(std > 0), 1.0, std)
    return np.where(flat | ~(std > 0), 0.0, mean / safe)


# --- Deflated Sharpe Ratio -------------------------------------------------------------------


def expected_maximum_sharpe(sharpe_variance: float, trials: int) -> float:
    """E[max SR] of `trials` independent trials whose true Sharpe ratio is 0.

    The Deflated Sharpe paper's approximation from extreme value theory:
    sqrt(V) · ((1 − γ) Z⁻¹(1 − 1/N) + γ Z⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant,
    Z⁻¹ the standard normal quantile, V the variance of the trials' Sharpe ratios. One trial
    is not a selection, so its expected maximum is its mean, 0.0.
    """
    if not sharpe_variance >= 0 or not math.isfinite(sharpe_variance):
        raise ValueError(f"sharpe_variance must be a finite number >= 0, got {sharpe_variance!r}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials!r}")
    if trials == 1:
        return 0.0
    quantiles = (1 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1 - 1 / trials) + (
        EULER_MASCHERONI * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )
    return math.sqrt(sharpe_variance) * quantiles


def probabilistic_sharpe_ratio(
    observed_sharpe: float,
    benchmark_sharpe: float,
    observations: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """Probability that the true Sharpe ratio exceeds `benchmark_sharpe` (PSR).

    Z[(SR − SR*) · sqrt(T − 1) / sqrt(1 − γ₃·SR + (γ₄ − 1)/4 · SR²)], with SR the observed
    per-period (non-annualised) Sharpe ratio, T the number of returns, γ₃ their skewness and
    γ₄ their **raw (non-excess) kurtosis: 3 for normal returns**. Any distribution has
    γ₄ ≥ γ₃² + 1, which keeps the square root real; inputs that break it are refused.
    """
    if observations < 2:
        raise ValueError(f"observations must be at least 2, got {observations!r}")
    for name, value in (
        ("observed_sharpe", observed_sharpe),
        ("benchmark_sharpe", benchmark_sharpe),
        ("skewness", skewness),
        ("kurtosis", kurtosis),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if kurtosis < skewness**2 + 1 - 1e-9:
        raise ValueError(
            f"kurtosis {kurtosis!r} is below skewness² + 1 = {skewness**2 + 1:.6g}: no distribution has "
            "these moments (is it excess kurtosis? pass the raw kurtosis, 3 for normal returns)"
        )
    sr = observed_sharpe
    spread = 1 - skewness * sr + (kurtosis - 1) / 4 * sr**2
    edge = (sr - benchmark_sharpe) * math.sqrt(observations - 1)
    if spread <= 0:  # only at the bound γ₄ = γ₃² + 1: the estimate has no spread left
        return 1.0 if edge > 0 else 0.0 if edge < 0 else 0.5
    return _NORMAL.cdf(edge / math.sqrt(spread))


def deflated_sharpe_ratio(
    observed_sharpe: float,
    sharpe_variance: float,
    trials: int,
    observations: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """The PSR of `observed_sharpe` against the expected maximum Sharpe ratio of `trials`
    worthless trials (see `expected_maximum_sharpe`); kurtosis is raw, 3 for normal returns."""
    benchmark = expected_maximum_sharpe(sharpe_variance, trials)
    return probabilistic_sharpe_ratio(observed_sharpe, benchmark, observations, skewness, kurtosis)


@dataclass(frozen=True)
class DeflatedSharpe:
    """The DSR of a search's best trial and what went into it (all Sharpe ratios per period)."""

    best_trial: int  # column index in the returns matrix
    observed_sharpe: float
    expected_max_sharpe: float
    sharpe_variance: float  # sample variance (ddof=1) of the trials' Sharpe ratios
    trials: int
    observations: int
    skewness: float  # of the best trial's returns
    kurtosis: float  # raw, 3 for normal returns
    dsr: float


def deflated_sharpe_of_trials(returns: np.ndarray) -> DeflatedSharpe:
    """The DSR of the best column of a periods × trials matrix of per-period returns.

    The best trial is the highest Sharpe ratio (the first column on ties); V is the sample
    variance of all trials' Sharpe ratios; skewness and kurtosis are the best trial's sample
    moments m₃/m₂^1.5 and m₄/m₂² (the paper's γ₃, γ₄; 0 and 3 for a series without variation,
    whose Sharpe ratio of 0 makes them irrelevant).
    """
    r = _validated_matrix(returns)
    periods, trials = r.shape
    if periods < 2:
        raise ValueError(f"returns needs at least 2 periods (rows), got {periods}")
    sharpes = sharpe_ratios(r)
    best = int(np.argmax(sharpes))
    variance = float(np.var(sharpes, ddof=1))
    skewness, kurtosis = _shape(r[:, best])
    expected_max = expected_maximum_sharpe(variance, trials)
    observed = float(sharpes[best])
    return DeflatedSharpe(
        best_trial=best,
        observed_sharpe=observed,
        expected_max_sharpe=expected_max,
        sharpe_variance=variance,
        trials=trials,
        observations=periods,
        skewness=skewness,
        kurtosis=kurtosis,
        dsr=probabilistic_sharpe_ratio(observed, expected_max, periods, skewness, kurtosis),
    )


def _shape(series: np.ndarray) -> tuple[float, float]:
    centred = series - series.mean()
    m2 = float(np.mean(centred**2))
    if np.ptp(series) == 0 or not m2 > 0:
        return 0.0, 3.0
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


# --- Probability of Backtest Overfitting ----------------------------------------------------


@dataclass(frozen=True)
class BacktestOverfitting:
    """CSCV's verdict on a search. One entry per combination in every tuple, in the order of
    `itertools.combinations(range(splits), splits // 2)` over the in-sample block indices."""

    pbo: float  # share of combinations whose logit is <= 0
    logits: tuple[float, ...]  # λ = ln(ω / (1 − ω)), ω the in-sample best's relative OOS rank
    combinations: int  # C(splits, splits / 2)
    degradation_slope: float  # least-squares slope of OOS on IS performance; NaN if IS is constant
    probability_of_loss: float  # share of combinations whose in-sample best scores < 0 OOS
    splits: int = 0
    chosen: tuple[int, ...] = ()  # the in-sample best trial (column) of each combination
    in_sample: tuple[float, ...] = ()  # its in-sample performance
    out_of_sample: tuple[float, ...] = ()  # its out-of-sample performance


def probability_of_backtest_overfitting(
    returns: np.ndarray, splits: int = 16, metric: Metric = sharpe_ratios
) -> BacktestOverfitting:
    """PBO of a periods × trials matrix of per-period returns by combinatorially symmetric
    cross-validation.

    The rows are cut into `splits` contiguous blocks as equal as `numpy.array_split` makes them
    (no row is dropped). For each of the C(S, S/2) ways to take half the blocks in-sample, the
    trial with the best in-sample `metric` (the first column on ties) is ranked among all trials
    on the out-of-sample rest: rank 1 the worst, tied trials sharing their average rank,
    ω = rank / (N + 1) and λ = ln(ω / (1 − ω)). PBO is the share of λ <= 0.

    `metric` maps a rows × trials matrix to one score per trial, higher better; the default is
    the per-period Sharpe ratio, computed from per-block moments so a search of thousands of
    trials over S = 16 (12,870 combinations) stays fast.
    """
    r = _validated_matrix(returns)
    periods, trials = r.shape
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 2 or splits % 2:
        raise ValueError(f"splits must be an even integer >= 2, got {splits!r}")
    if periods < splits:
        raise ValueError(f"returns has {periods} rows (periods), fewer than splits={splits}")
    if (periods // splits) * (splits // 2) < 2:
        raise ValueError(f"returns has {periods} rows: each half of splits={splits} needs at least 2")
    bounds = np.cumsum([0] + [len(b) for b in np.array_split(np.arange(periods), splits)])
    halves = np.array(list(combinations(range(splits), splits // 2)), dtype=np.intp)
    in_mask = np.zeros((len(halves), splits), dtype=bool)
    in_mask[np.arange(len(halves))[:, None], halves] = True

    chosen = np.empty(len(halves), dtype=np.intp)
    is_score = np.empty(len(halves))
    oos_score = np.empty(len(halves))
    ranks = np.empty(len(halves))
    for start, is_scores, oos_scores in _scores(r, bounds, in_mask, metric):
        stop = start + len(is_scores)
        best = np.argmax(is_scores, axis=1)
        rows = np.arange(len(best))
        chosen_oos = oos_scores[rows, best]
        below = (oos_scores < chosen_oos[:, None]).sum(axis=1)
        tied = (oos_scores == chosen_oos[:, None]).sum(axis=1)
        ranks[start:stop] = below + (tied + 1) / 2
        chosen[start:stop] = best
        is_score[start:stop] = is_scores[rows, best]
        oos_score[start:stop] = chosen_oos

    omega = ranks / (trials + 1)
    logits = np.log(omega / (1 - omega))
    return BacktestOverfitting(
        pbo=float(np.mean(logits <= 0)),
        logits=tuple(float(x) for x in logits),
        combinations=len(halves),
        degradation_slope=_slope(is_score, oos_score),
        probability_of_loss=float(np.mean(oos_score < 0)),
        splits=splits,
        chosen=tuple(int(x) for x in chosen),
        in_sample=tuple(float(x) for x in is_score),
        out_of_sample=tuple(float(x) for x in oos_score),
    )


def _scores(
    r: np.ndarray, bounds: np.ndarray, in_mask: np.ndarray, metric: Metric
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first combination, IS scores, OOS scores) per chunk of combinations, each combinations × trials."""
    if metric is sharpe_ratios:
        yield from _block_sharpes(r, bounds, in_mask)
        return
    blocks = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    for c, mask in enumerate(in_mask):
        scores = []
        for side in (mask, ~mask):
            rows = np.concatenate([blocks[i] for i in np.flatnonzero(side)])
            score = np.asarray(metric(r[rows]), dtype=np.float64)
            if score.shape != (r.shape[1],) or np.isnan(score).any():
                raise ValueError(
                    f"metric must return one non-NaN score per trial (shape ({r.shape[1]},)), "
                    f"got shape {score.shape}"
                )
            scores.append(score[None, :])
        yield c, scores[0], scores[1]


def _block_sharpes(
    r: np.ndarray, bounds: np.ndarray, in_mask: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Sharpe ratios of every half from per-block counts, means, squared deviations and ranges.

    A half's variance is pooled from its blocks (sum of the blocks' squared deviations plus each
    block's weight times its mean's squared distance from the half's mean), which avoids the
    cancellation of sum-of-squares formulas; its range decides "no variation" exactly as
    `sharpe_ratios` does, so a trial flat over a half scores 0.0 on both paths.
    """
    splits = len(bounds) - 1
    counts = np.diff(bounds).astype(np.float64)
    blocks = [r[bounds[i] : bounds[i + 1]] for i in range(splits)]
    means = np.stack([b.mean(axis=0) for b in blocks])  # splits × trials
    m2 = np.stack([((b - b.mean(axis=0)) ** 2).sum(axis=0) for b in blocks])
    highs = np.stack([b.max(axis=0) for b in blocks])
    lows = np.stack([b.min(axis=0) for b in blocks])
    chunk = max(1, 2_000_000 // (splits * r.shape[1]))
    for start in range(0, len(in_mask), chunk):
        masks = in_mask[start : start + chunk]
        yield (
            start,
            _pooled_sharpe(masks, counts, means, m2, highs, lows),
            _pooled_sharpe(~masks, counts, means, m2, highs, lows),
        )


def _pooled_sharpe(
    masks: np.ndarray,
    counts: np.ndarray,
    means: np.ndarray,
    m2: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
) -> np.ndarray:
    weights = masks * counts  # combinations × splits
    n = weights.sum(axis=1)[:, None]
    mean = weights @ means / n
    spread = np.einsum("cs,csn->cn", weights, (means[None, :, :] - mean[:, None, :]) ** 2)
    var = np.maximum(masks.astype(np.float64) @ m2 + spread, 0.0) / (n - 1)
    chosen = masks[:, :, None]
    flat = np.where(chosen, highs, -np.inf).max(axis=1) == np.where(chosen, lows, np.inf).min(axis=1)
    std = np.sqrt(var)
    degenerate = flat | ~(std > 0)
    return np.where(degenerate, 0.0, mean / np.where(degenerate, 1.0, std))


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx**2).sum())


def _validated_matrix(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be a 2-D periods × trials matrix, got {r.ndim} dimension(s)")
    if r.shape[1] < 2:
        raise ValueError(f"returns needs at least 2 trials (columns), got {r.shape[1]}")
    bad = np.argwhere(~np.isfinite(r))
    if len(bad):
        row, column = bad[0]
        raise ValueError(
            f"returns has {len(bad)} NaN or infinite value(s), the first at row {row}, column {column}"
        )
    return r
