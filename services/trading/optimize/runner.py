"""Running an optimization (issue 16): an Optuna study asking for trials, Ray running them, the
store writing each as it finishes; a walk-forward run does that per window and then runs the
winner unseen on the window's test period.

**Reproducible.** Optuna's ask-and-tell interface with a fixed number of trials in flight (the
run's `parallelism`, Ray's CPUs when it starts). Trials are told in the order they were asked,
and trial k is asked right after trial k - parallelism is told, with a sampler seeded from
(seed, window, k): what the sampler has seen when it suggests trial k, and its random state,
are then the same in every run of the same config, however the workers' timing falls.

**Resumable.** A resumed run replays that schedule: a trial already stored is enqueued with its
stored parameters (`Study.enqueue_trial`) and told its stored result at its place in the
order, so the study the sampler sees is the one the first run had; only trials not stored run.
A walk-forward window already stored is not searched again.

**Overfitting, measured.** After a search: the Deflated Sharpe Ratio of the best trial and the
Probability of Backtest Overfitting from the trials' daily returns (every trial that ran to
the end, feasible or not: the deflation counts every trial tried), and the parameters'
importance (fANOVA) once two trials have completed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np
import optuna
import structlog
from optuna.trial import TrialState

from services.trading.backtest.backtester import BacktestData
from services.trading.backtest.config import BacktestConfig
from services.trading.backtest.market import xnys_sessions
from services.trading.core import performance_tracker
from services.trading.optimize import cluster, store
from services.trading.optimize.config import OptimizationConfig, OptimizationConfigError, SamplerName
from services.trading.optimize.objective import calmar_ratio, sortino_ratio
from services.trading.optimize.overfitting import (
    deflated_sharpe_of_trials,
    probability_of_backtest_overfitting,
)
from services.trading.optimize.trial import COMPLETE, FAILED, INFEASIBLE, TrialOutcome, TrialSpec, evaluate
from services.trading.optimize.walk_forward import (
    WalkForwardWindow,
    degradation,
    parameter_stability,
    plan_windows,
    stitch_equity,
)

log = structlog.get_logger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
PBO_SPLITS = 16
LOGIT_BINS = 20

# progress(done, planned, what): after every finished trial, stored or run.
ProgressCallback = Callable[[int, int, str], None]


class RunBusy(RuntimeError):
    """Another process is running this optimization."""


@dataclass
class RunReport:
    """What a run found, as stored."""

    run_id: UUID
    config: OptimizationConfig
    trials: list[TrialOutcome] = field(default_factory=list)  # every search trial, by window then number
    best: TrialOutcome | None = None
    dsr: Any = None
    pbo: Any = None
    importance: dict[str, float] | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def planned_trials(config: OptimizationConfig, data: BacktestData) -> int:
    windows = len(_windows(config, data)) if config.walk_forward else 1
    return windows * config.trials_per_search


async def run_optimization(
    connection: asyncpg.Connection,
    run_id: UUID,
    config: OptimizationConfig,
    data: BacktestData,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    progress: ProgressCallback | None = None,
    evaluate_trial: Callable[..., TrialOutcome] = evaluate,
) -> RunReport:
    """Run (or resume) optimization `run_id`, recorded beforehand with `store.create_run`.

    Holds the run's lock for its duration (`RunBusy` when another process has it), marks it
    `completed`, or `interrupted` when cancelled (Ctrl-C, the server stopping) and `failed` on
    an error, which is raised again."""
    if not await store.claim_run(connection, run_id):
        raise RunBusy(f"optimization {run_id} is running in another process")
    ray = None
    try:
        await store.start_run(connection, run_id)
        try:
            ray = await asyncio.to_thread(cluster.connect, ray_address, num_cpus, data.market.nbytes)
            if config.parallelism is None:
                config = replace(config, parallelism=ray.cpus)
                await store.update_config(connection, run_id, config.to_json())
            runner = _Runner(connection, run_id, config, data, progress, evaluate_trial)
            await store.set_planned(connection, run_id, runner.planned)
            report = await runner.run()
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(
                store.stop_run(connection, run_id, "interrupted", "stopped before it finished; resume it")
            )
            raise
        except Exception as exc:
            await store.stop_run(connection, run_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        return report
    finally:
        try:
            await store.release_run(connection, run_id)
        finally:
            if ray is not None:
                await asyncio.to_thread(ray.shutdown)


def check_windows(config: OptimizationConfig) -> None:
    """Refuse a walk-forward run whose range holds no window (`OptimizationConfigError`),
    before any history is loaded: the market's sessions are the exchange calendar's."""
    if config.walk_forward is not None:
        b = config.backtest
        _windows(config, xnys_sessions(b.start_date, b.end_date))


def _windows(config: OptimizationConfig, data: BacktestData | Sequence[date]) -> list[WalkForwardWindow]:
    wf = config.walk_forward
    assert wf is not None
    b = config.backtest
    calendar = data.market.sessions if isinstance(data, BacktestData) else data
    sessions = [d for d in calendar if b.start_date <= d <= b.end_date]
    try:
        return plan_windows(sessions, wf.train, wf.test, wf.step, wf.anchored)
    except ValueError as exc:
        raise OptimizationConfigError("train", f"no walk-forward window fits: {exc}") from None


class _Runner:
    def __init__(
        self,
        connection: asyncpg.Connection,
        run_id: UUID,
        config: OptimizationConfig,
        data: BacktestData,
        progress: ProgressCallback | None,
        evaluate_trial: Callable[..., TrialOutcome],
    ) -> None:
        self.connection, self.run_id, self.config, self.data = connection, run_id, config, data
        self.progress = progress
        self.evaluate_trial = evaluate_trial
        self.task = cluster.trial_task()
        self.in_flight: dict[asyncio.Future, tuple[int, Any]] = {}  # future -> (trial number, Ray ref)
        self.done = 0
        self.planned = planned_trials(config, data)

    async def run(self) -> RunReport:
        import ray

        self.stored = await store.load_trials(self.connection, self.run_id)
        self.data_ref = await asyncio.to_thread(ray.put, self.data)
        try:
            if self.config.walk_forward is None:
                return await self._run_search()
            return await self._run_walk_forward()
        finally:
            for _, ref in self.in_flight.values():
                ray.cancel(ref)
            self.in_flight.clear()

    # -- a search ----------------------------------------------------------------------------

    async def _run_search(self) -> RunReport:
        outcomes, study = await self._search(None, self.config.backtest)
        report = RunReport(self.run_id, self.config, outcomes)
        report.best = best_trial(outcomes)
        report.dsr, report.pbo = overfitting(outcomes)
        report.importance = importance(study, self.config.seed)
        if report.best is not None:
            report.summary = {
                "best_equity": store.equity_json(
                    equity_of(report.best.returns, self._sessions(self.config.backtest), self.capital)
                )
            }
        await store.finish_run(
            self.connection,
            self.run_id,
            best_trial=None if report.best is None else report.best.number,
            best_value=None if report.best is None else report.best.value,
            best_params=None if report.best is None else self.config.space.normalise(report.best.params),
            dsr=report.dsr,
            pbo=report.pbo,
            importance=report.importance,
            summary=report.summary,
        )
        return report

    @property
    def capital(self) -> Decimal:
        return self.config.backtest.initial_capital

    def _sessions(self, config: BacktestConfig) -> list[date]:
        return [d for d in self.data.market.sessions if config.start_date <= d <= config.end_date]

    def _sampler(self, window: int | None, number: int) -> optuna.samplers.BaseSampler:
        c = self.config
        seed = int(
            np.random.SeedSequence([c.seed, 0 if window is None else window + 1, number]).generate_state(1)[0]
        )
        if c.sampler is SamplerName.GRID:
            # Trial k takes grid point k of the seeded shuffle (trials never outnumber the grid).
            return optuna.samplers.GridSampler(c.space.grid(), seed=c.seed)
        if c.sampler is SamplerName.RANDOM:
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    async def _search(
        self, window: int | None, base: BacktestConfig
    ) -> tuple[list[TrialOutcome], optuna.Study]:
        c = self.config
        total, parallel = c.trials_per_search, c.parallelism or 1
        distributions = c.space.distributions()
        study = optuna.create_study(direction="maximize", sampler=self._sampler(window, 0))
        asked: dict[int, optuna.Trial] = {}
        finished: dict[int, TrialOutcome] = {}

        def suggest(number: int, prior: TrialOutcome | None) -> optuna.Trial:
            study.sampler = self._sampler(window, number)
            if prior is not None:
                study.enqueue_trial(dict(prior.params), skip_if_exists=False)
            return study.ask(distributions)

        async def ask(number: int) -> None:
            prior = self.stored.get((window, number))
            # Sampling takes a while with many trials: off the event loop (the API serves on it).
            trial = asyncio.to_thread(suggest, number, prior)
            asked[number] = await trial
            if prior is not None:
                finished[number] = prior
                await self._advance(f"stored trial {number}")
                return
            spec = TrialSpec(number, window, asked[number].params, base, c.space, c.objective)
            self._submit(spec)

        next_ask = next_tell = 0
        outcomes: list[TrialOutcome] = []
        while next_ask < min(parallel, total):
            await ask(next_ask)
            next_ask += 1
        while next_tell < total:
            if next_tell in finished:
                outcome = finished.pop(next_tell)
                await asyncio.to_thread(self._tell, study, asked.pop(next_tell), outcome)
                outcomes.append(outcome)
                next_tell += 1
                if next_ask < total:
                    await ask(next_ask)
                    next_ask += 1
                continue
            outcome = await self._next_finished(window)
            finished[outcome.number] = outcome
        return outcomes, study

    def _submit(self, spec: TrialSpec) -> asyncio.Future:
        ref = self.task.remote([self.data_ref], spec, self.evaluate_trial)
        future = asyncio.wrap_future(ref.future())
        self.in_flight[future] = (spec.number, ref)
        return future

    async def _next_finished(self, window: int | None) -> TrialOutcome:
        """The next trial to finish, judged against the constraints and stored."""
        done, _ = await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
        future = next(iter(done))
        number, _ = self.in_flight.pop(future)
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - the worker died more often than it may retry, or its node left
            outcome = TrialOutcome(number, window, {}, FAILED, None, reason=f"{type(exc).__name__}: {exc}")
        outcome = self._judge(outcome)
        await store.save_trial(self.connection, self.run_id, outcome)
        await self._advance(f"trial {number}" if window is None else f"window {window} trial {number}")
        return outcome

    def _judge(self, outcome: TrialOutcome) -> TrialOutcome:
        if outcome.state == COMPLETE and outcome.metrics is not None:
            reason = self.config.constraints.reason(outcome.metrics)
            if reason is not None:
                return replace(outcome, state=INFEASIBLE, reason=reason)
        return outcome

    async def _advance(self, what: str) -> None:
        self.done += 1
        await store.set_progress(self.connection, self.run_id, self.done, self.done / max(self.planned, 1))
        if self.progress is not None:
            self.progress(self.done, self.planned, what)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
        if outcome.state == FAILED:
            study.tell(trial, state=TrialState.FAIL)
            return
        if outcome.metrics is None:  # infeasible before running: the signal's windows
            trial.set_constraint("signal_windows", 1.0)
        else:
            for key, value in self.config.constraints.violations(outcome.metrics).items():
                trial.set_constraint(key, value)
        study.tell(trial, outcome.value if outcome.value is not None else -math.inf)

    # -- a walk-forward run ------------------------------------------------------------------

    async def _run_walk_forward(self) -> RunReport:
        report = RunReport(self.run_id, self.config)
        stored_windows = {
            w["window_index"]: w for w in await store.load_windows(self.connection, self.run_id)
        }
        for window in _windows(self.config, self.data):
            if window.index in stored_windows:
                row = stored_windows[window.index]
                self.done += self.config.trials_per_search
                report.windows.append(row)
                continue
            row, outcomes = await self._window(window)
            await store.save_window(self.connection, self.run_id, row)
            report.windows.append(row)
            report.trials += outcomes
        report.summary = walk_forward_summary(report.windows, self.capital, self.config)
        await store.finish_run(self.connection, self.run_id, summary=report.summary)
        return report

    async def _window(self, window: WalkForwardWindow) -> tuple[dict[str, Any], list[TrialOutcome]]:
        b = self.config.backtest
        train = replace(b, start_date=window.train_start, end_date=window.train_end)
        test = replace(b, start_date=window.test_start, end_date=window.test_end)
        outcomes, study = await self._search(window.index, train)
        best = best_trial(outcomes)
        dsr, pbo = overfitting(outcomes)
        row: dict[str, Any] = {
            "window_index": window.index,
            "train_start": window.train_start,
            "train_end": window.train_end,
            "test_start": window.test_start,
            "test_end": window.test_end,
            "dsr": dsr,
            "pbo": pbo,
            "importance": importance(study, self.config.seed),
        }
        if best is None:
            return {**row, "error": "no feasible trial in the train period"}, outcomes
        row |= {
            "best_trial": best.number,
            "best_params": self.config.space.normalise(best.params),
            "in_sample": best.metrics.to_json() if best.metrics else None,
            "in_sample_equity": store.equity_json(
                equity_of(best.returns, self._sessions(train), self.capital)
            ),
        }
        unseen = await self._out_of_sample(window.index, test, best.params)
        if unseen.state == FAILED or unseen.metrics is None:
            return {**row, "error": f"the out-of-sample run failed: {unseen.reason}"}, outcomes
        row |= {
            "out_of_sample": unseen.metrics.to_json(),
            "degradation": degradation(best.value or 0.0, unseen.metrics.value(self.config.objective)),
            "oos_equity": store.equity_json(unseen.equity),
        }
        return row, outcomes

    async def _out_of_sample(
        self, window: int, test: BacktestConfig, params: Mapping[str, Any]
    ) -> TrialOutcome:
        c = self.config
        spec = TrialSpec(
            c.trials_per_search, window, dict(params), test, c.space, c.objective, keep_equity=True
        )
        future = self._submit(spec)
        try:
            return await future
        except Exception as exc:  # noqa: BLE001 - as for a trial: recorded on the window, the run goes on
            return TrialOutcome(
                spec.number, window, dict(params), FAILED, None, reason=f"{type(exc).__name__}: {exc}"
            )
        finally:
            self.in_flight.pop(future, None)


# -- results -------------------------------------------------------------------------------------


def best_trial(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    """The feasible trial with the highest objective; the earliest on a tie."""
    feasible = [
        o for o in outcomes if o.state == COMPLETE and o.value is not None and not math.isnan(o.value)
    ]
    return max(feasible, key=lambda o: (o.value, -o.number), default=None)


def returns_matrix(outcomes: Sequence[TrialOutcome]) -> tuple[np.ndarray, list[int]]:
    """Daily returns, sessions × trials, of every trial that ran to the end, and the trial
    number of each column. Every such trial ran the same sessions (the same period), so rows
    are the period's sessions in order."""
    counted = [o for o in outcomes if o.counted]
    if not counted:
        return np.empty((0, 0)), []
    length = max(o.returns.size for o in counted)
    kept = [o for o in counted if o.returns.size == length]
    return np.column_stack([o.returns for o in kept]), [o.number for o in kept]


def overfitting(outcomes: Sequence[TrialOutcome]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(DSR, PBO) of a search as stored: the measures' fields, the DSR's best column as its
    trial number; `{"error": ...}` when a measure cannot be computed (too few trials or days)."""
    matrix, numbers = returns_matrix(outcomes)
    if len(numbers) < 2:
        reason = {"error": f"{len(numbers)} trial(s) ran to the end: DSR and PBO need 2 at least"}
        return reason, reason
    try:
        d = deflated_sharpe_of_trials(matrix)
        dsr: dict[str, Any] = {**store.json_safe(d), "best_trial": numbers[d.best_trial]}
    except ValueError as exc:
        dsr = {"error": str(exc)}
    try:
        p = probability_of_backtest_overfitting(matrix, splits=PBO_SPLITS)
        pbo: dict[str, Any] = {
            "pbo": p.pbo,
            "combinations": p.combinations,
            "degradation_slope": p.degradation_slope,
            "probability_of_loss": p.probability_of_loss,
            "splits": PBO_SPLITS,
            "logit_histogram": logit_histogram(p.logits),
        }
    except ValueError as exc:
        pbo = {"error": str(exc)}
    return store.json_safe(dsr), store.json_safe(pbo)


def logit_histogram(logits: Sequence[float], bins: int = LOGIT_BINS) -> dict[str, list[float]]:
    """The distribution of CSCV's logits, as the PBO paper draws it (12,870 of them for 16
    splits: a histogram is what a reader needs, not the list)."""
    finite = np.asarray([v for v in logits if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(finite, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def importance(study: optuna.Study, seed: int) -> dict[str, float] | None:
    """fANOVA importance of each parameter over the trials with a finite objective; None with
    fewer than two, or when every trial had the same parameters."""
    finite = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if len(finite) < 2:
        return None
    scratch = optuna.create_study(direction="maximize")
    scratch.add_trials(finite)
    try:
        found = optuna.importance.get_param_importances(
            scratch, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
        )
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    return {name: float(value) for name, value in found.items() if math.isfinite(value)}


def equity_of(returns: np.ndarray, sessions: Sequence[date], capital: Decimal) -> list[tuple[date, Decimal]]:
    """An end-of-day equity curve rebuilt from its daily returns (to float precision)."""
    values = float(capital) * np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))
    return [(d, Decimal(repr(float(v)))) for d, v in zip(sessions, values)]


def curve_metrics(curve: Sequence[tuple[date, Decimal]], capital: Decimal) -> dict[str, float]:
    values = [capital, *(v for _, v in curve)]
    returns = performance_tracker.daily_returns(values)
    total = float(values[-1] / capital - 1)
    drawdown = performance_tracker.max_drawdown(values)
    return {
        "total_return": total,
        "sharpe": performance_tracker.sharpe_ratio(returns, window=max(len(returns), 1)),
        "sortino": sortino_ratio(returns),
        "calmar": calmar_ratio(total, len(returns), drawdown),
        "max_drawdown": drawdown,
        "sessions": len(returns),
    }


def walk_forward_summary(
    windows: Sequence[Mapping[str, Any]], capital: Decimal, config: OptimizationConfig
) -> dict[str, Any]:
    """The stitched out-of-sample record beside the in-sample one, the degradation between
    them and how steady the chosen parameters were."""
    done = [w for w in windows if w.get("out_of_sample")]
    objective = config.objective.value
    summary: dict[str, Any] = {"windows": len(windows), "windows_tested": len(done)}
    if not done:
        return summary
    # Each test run starts from the initial capital the session before its first: that point
    # leads its segment, so the first session's return is stitched too.
    segments = [
        [(_day(w["train_end"]), capital)]
        + [(date.fromisoformat(p["date"]), Decimal(p["value"])) for p in w["oos_equity"]]
        for w in done
    ]
    try:
        stitched = stitch_equity(segments, capital)
        summary["oos_equity"] = store.equity_json(stitched)
        summary["out_of_sample_metrics"] = curve_metrics(stitched, capital)
    except ValueError as exc:  # overlapping test periods (a step shorter than the test)
        summary["oos_equity"] = []
        summary["stitch_error"] = str(exc)
    in_sample = [w["in_sample"].get(objective) for w in done]
    out_of_sample = [w["out_of_sample"].get(objective) for w in done]
    finite_is = [v for v in in_sample if isinstance(v, (int, float))]
    finite_oos = [v for v in out_of_sample if isinstance(v, (int, float))]
    mean_is = float(np.mean(finite_is)) if finite_is else None
    mean_oos = float(np.mean(finite_oos)) if finite_oos else None
    summary |= {
        "objective": objective,
        "in_sample_mean": mean_is,
        "out_of_sample_mean": mean_oos,
        "degradation": None if mean_is is None or mean_oos is None else degradation(mean_is, mean_oos),
        "stability": store.json_safe(parameter_stability([w["best_params"] for w in done])),
    }
    return store.json_safe(summary)


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def run_optimization_job(
    pool: asyncpg.Pool,
    run_id: UUID,
    config: OptimizationConfig,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
) -> None:
    """Run one optimization for the API on a connection of its own (it holds the run's lock):
    the history loaded, then `run_optimization`. Never raises for a run that fails: the run
    says why."""
    from services.trading.backtest.config import BacktestConfigError
    from services.trading.backtest.run_store import load_backtest_data

    async with pool.acquire() as connection:
        try:
            data = await load_backtest_data(connection, config.backtest)
        except (BacktestConfigError, asyncpg.PostgresError, OSError) as exc:
            log.warning("optimization could not load its history", run_id=str(run_id), error=str(exc))
            await store.stop_run(connection, run_id, "failed", str(exc))
            return
        try:
            await run_optimization(
                connection, run_id, config, data, ray_address=ray_address, num_cpus=num_cpus
            )
        except RunBusy as exc:
            log.warning("optimization not started", run_id=str(run_id), error=str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded on the run as failed; the server goes on
            log.warning("optimization failed", run_id=str(run_id), error=f"{type(exc).__name__}: {exc}")
        else:
            log.info("optimization finished", run_id=str(run_id))
