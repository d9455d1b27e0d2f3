"""Searches and walk-forward runs on a real local Ray and a real PostgreSQL: trials stored as they
finish, the same seed giving the same trials, an interrupted run resumed with only its missing
trials (ending exactly as an uninterrupted run), a dying worker's trial retried, the history
read from the object store without copies, and a walk-forward run checked against backtests
run directly."""

from __future__ import annotations

import asyncio
import math
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from services.trading.backtest import Backtester, sample_backtest_data
from services.trading.optimize import cluster, store
from services.trading.optimize.config import OptimizationConfig
from services.trading.optimize.objective import trial_metrics
from services.trading.optimize.runner import RunBusy, best_trial, planned_trials, run_optimization
from services.trading.optimize.search_space import apply_parameters
from services.trading.optimize.trial import COMPLETE, INFEASIBLE, evaluate

pytestmark = pytest.mark.integration

START, END = date(2005, 1, 3), date(2006, 6, 30)
TICKERS = ("AAPL", "MSFT")
SPACE = {
    "reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5},
    "stop_loss_atr_multiplier": {"low": 1, "high": 3},
    "signal_fast_window": {"low": 5, "high": 30},
    "signal_slow_window": {"low": 20, "high": 40},
}


def _config(**changes) -> OptimizationConfig:
    values = {
        "start_date": START,
        "end_date": END,
        "initial_capital": "10000",
        "risk_tier": "aggressive",
        "tickers": list(TICKERS),
        "signals": "momentum",
        "space": SPACE,
        "trials": 8,
        "seed": 3,
        "min_trades": 8,
        "parallelism": 2,
    }
    return OptimizationConfig.parse(**{**values, **changes})


@pytest.fixture(scope="module")
def sample():
    return sample_backtest_data(START, END, TICKERS)


def _sessions(data, start=START, end=END) -> int:
    return sum(1 for d in data.market.sessions if start <= d <= end)


async def _run(db, config, data, **kwargs):
    run_id = uuid4()
    await store.create_run(
        db, run_id, config.kind, config.to_json(), config.objective.value, planned_trials(config, data)
    )
    return run_id, await run_optimization(db, run_id, config, data, **kwargs)


def _signature(trials) -> list[tuple]:
    return [(t.number, dict(t.params), t.state, t.value) for t in trials]


async def test_a_search_stores_each_trial_with_its_verdict(db, local_ray, sample) -> None:
    seen: list[int] = []
    run_id, report = await _run(db, _config(), sample, progress=lambda done, planned, what: seen.append(done))
    assert seen == list(range(1, 9))
    run = await store.fetch_run(db, run_id)
    assert (run["status"], run["progress"], run["trials_done"], run["trials_planned"]) == (
        "completed",
        1.0,
        8,
        8,
    )
    stored = await store.load_trials(db, run_id)
    assert [(n, dict(o.params), o.state, o.value) for (_, n), o in stored.items()] == _signature(
        report.trials
    )
    states = {o.state for o in report.trials}
    assert states <= {COMPLETE, INFEASIBLE} and len(report.trials) == 8
    for outcome in stored.values():
        assert outcome.node_id and outcome.returns.size in (0, _sessions(sample))  # every session
        if outcome.state == INFEASIBLE:
            assert outcome.reason
            fast, slow = outcome.params["signal_fast_window"], outcome.params["signal_slow_window"]
            assert fast >= slow or outcome.metrics.trade_count < 8 or "fast window" in outcome.reason
    # The best trial is the best feasible one, and what was stored says so.
    feasible = [o for o in report.trials if o.state == COMPLETE]
    assert report.best is not None and report.best.value == max(o.value for o in feasible)
    assert run["best_trial"] == report.best.number and run["best_value"] == report.best.value
    # Replayed by hand, the best trial's parameters give the same backtest.
    config = _config()
    direct = evaluate(sample, _spec(config, report.best))
    assert direct.value == report.best.value and np.array_equal(direct.returns, report.best.returns)
    # Overfitting measured over every trial that ran to the end.
    counted = sum(1 for o in report.trials if o.counted)
    assert run["dsr"]["trials"] == counted and 0 <= run["dsr"]["dsr"] <= 1
    assert run["pbo"]["combinations"] == 12_870 and 0 <= run["pbo"]["pbo"] <= 1
    assert set(run["importance"]) <= set(SPACE)
    assert len(run["summary"]["best_equity"]) == _sessions(sample)


def _spec(config, outcome):
    from services.trading.optimize.trial import TrialSpec

    return TrialSpec(outcome.number, None, outcome.params, config.backtest, config.space, config.objective)


async def test_the_same_seed_gives_the_same_trials(db, local_ray, sample) -> None:
    _, first = await _run(db, _config(trials=6, seed=11), sample)
    _, again = await _run(db, _config(trials=6, seed=11), sample)
    _, other = await _run(db, _config(trials=6, seed=12), sample)
    assert _signature(first.trials) == _signature(again.trials)
    assert [t.params for t in first.trials] != [t.params for t in other.trials]


async def test_an_interrupted_run_resumes_with_only_its_missing_trials(db, local_ray, sample) -> None:
    config = _config(trials=12, seed=5, sampler="tpe")
    _, whole = await _run(db, config, sample)

    run_id = uuid4()
    await store.create_run(db, run_id, config.kind, config.to_json(), config.objective.value, 12)
    task = asyncio.current_task()
    interrupted = asyncio.create_task(
        run_optimization(
            db, run_id, config, sample, progress=lambda done, *_: done >= 5 and interrupted.cancel()
        )
    )
    assert task is not None
    with pytest.raises(asyncio.CancelledError):
        await interrupted
    run = await store.fetch_run(db, run_id)
    stored = await store.load_trials(db, run_id)
    assert run["status"] == "interrupted" and 5 <= len(stored) < 12

    progress: list[str] = []
    resumed = await run_optimization(
        db, run_id, config, sample, progress=lambda d, p, what: progress.append(what)
    )
    replayed = [w for w in progress if w.startswith("stored")]
    assert len(replayed) == len(stored) and len(progress) - len(replayed) == 12 - len(stored)
    assert _signature(resumed.trials) == _signature(whole.trials)
    assert (await store.fetch_run(db, run_id))["status"] == "completed"


async def test_a_run_held_by_a_process_is_not_marked_interrupted(db, database_url) -> None:
    from services.shared.db import connect

    config = _config()
    held, orphan = uuid4(), uuid4()
    for run_id in (held, orphan):
        await store.create_run(db, run_id, config.kind, config.to_json(), "sharpe", 8)
    other = await connect(database_url)
    try:
        assert await store.claim_run(other, held)
        assert not await store.claim_run(db, held)
        assert await store.mark_orphaned_runs(db) == [orphan]
        with pytest.raises(RunBusy):
            await run_optimization(db, held, config, sample_backtest_data(START, END, TICKERS))
    finally:
        await other.close()
    assert (await store.fetch_run(db, held))["status"] == "running"
    assert (await store.fetch_run(db, orphan))["status"] == "interrupted"


def dying_evaluate(data, spec, node_id):
    """Trial 1's worker process dies the first time it runs it (as a worker killed or out of
    memory would); every later attempt and trial runs normally."""
    marker = (
        Path(os.environ["STONKS_TEST_RAY_DIR"])
        / f"died-{os.environ.get('STONKS_TEST_RUN', '')}-{spec.number}"
    )
    if spec.number == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return evaluate(data, spec, node_id)


async def test_a_trial_whose_worker_dies_is_retried(db, local_ray, sample) -> None:
    _, report = await _run(db, _config(trials=4, min_trades=0), sample, evaluate_trial=dying_evaluate)
    died = list(local_ray.glob("died-*-1"))
    assert len(died) == 1  # the worker did die
    assert [t.state for t in report.trials] == [COMPLETE] * 4
    _, clean = await _run(db, _config(trials=4, min_trades=0), sample)
    assert _signature(report.trials) == _signature(clean.trials)


def probe(data, spec, node_id):
    close = data.market.close
    return close.flags.writeable, close.flags.owndata, float(np.nansum(close)), node_id


def test_the_history_reaches_workers_from_the_object_store_without_copies(local_ray, sample) -> None:
    import ray

    ref = ray.put(sample)
    writeable, owns, total, node = ray.get(cluster.trial_task().remote([ref], None, probe))
    # A copy would own its memory and be writeable; a view of the shared store is neither.
    assert not writeable and not owns and node
    assert total == float(np.nansum(sample.market.close))


async def test_a_walk_forward_run_matches_backtests_run_directly(db, local_ray) -> None:
    config = _config(
        start_date="2005-01-03",
        end_date="2006-04-28",
        trials=4,
        min_trades=0,
        space={"reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5}, "signal_fast_window": [5, 10, 15]},
        walk_forward={"train": 126, "test": 63},
    )
    data = sample_backtest_data(config.backtest.start_date, config.backtest.end_date, TICKERS)
    run_id, report = await _run(db, config, data)
    windows = await store.load_windows(db, run_id)
    sessions = [d for d in data.market.sessions if d >= config.backtest.start_date]
    assert len(windows) == (len(sessions) - 126 - 63) // 63 + 1 == 3
    run = await store.fetch_run(db, run_id)
    assert run["status"] == "completed" and run["trials_done"] == 12 == len(run["trials"])
    capital = config.backtest.initial_capital
    for w in windows:
        assert w["train_end"] < w["test_start"] and w["error"] is None
        # The winner, run unseen on the test period directly, gives the stored out-of-sample figures.
        test = apply_parameters(
            config.backtest.__class__.parse(
                **{**config.backtest.to_input(), "start_date": w["test_start"], "end_date": w["test_end"]}
            ),
            w["best_params"],
        )
        from services.trading.backtest import signals

        fast = w["best_params"]["signal_fast_window"]
        recs = signals.momentum_recommendations(data.market, None, fast, 30)
        from dataclasses import replace

        direct = Backtester(replace(data, recommendations=recs)).run(test)
        assert trial_metrics(direct).to_json() == w["out_of_sample"]
        assert [p["date"] for p in w["oos_equity"]] == [d.isoformat() for d, _ in direct.equity_curve]
        is_value = w["in_sample"]["sharpe"]
        expected = w["out_of_sample"]["sharpe"] / is_value if is_value and is_value > 0 else None
        assert w["degradation"] == (pytest.approx(expected) if expected is not None else None)
    summary = run["summary"]
    assert len(summary["oos_equity"]) == 1 + 3 * 63  # the start, then every test session
    # Stitched: each window's growth from its own capital compounds on the last.
    growth = math.prod(Decimal(w["oos_equity"][-1]["value"]) / capital for w in windows)
    assert Decimal(summary["oos_equity"][-1]["value"]) == pytest.approx(capital * growth, abs=Decimal("0.01"))
    assert [s["name"] for s in summary["stability"]] == ["reward_risk_ratio", "signal_fast_window"]
    assert best_trial(report.trials) is not None
