"""`stonks-trading optimize` (`./stonks optimize`): a parameter search or a walk-forward run from
the command line, with a progress bar, stored as it goes and summed up in tables (issue 16).

Bad input (an unknown parameter, a range outside a setting's bounds, an unknown objective,
too few sessions for one walk-forward window) ends with one line on stderr and exit code 1.
Ctrl-C leaves the run `interrupted`; `--resume ID` finishes it, running only missing trials.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID, uuid4

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.shared.config import AppConfig, ConfigError, load_config
from services.shared.db import connect
from services.shared.embedded import EmbeddedServerError
from services.shared.logging import configure_logging
from services.shared.migrations import MigrationError, upgrade
from services.shared.runtime import resolve_server_urls
from services.trading.backtest.config import BacktestConfigError
from services.trading.backtest.run_store import load_backtest_data
from services.trading.optimize import store
from services.trading.optimize.config import OptimizationConfig
from services.trading.optimize.runner import RunBusy, RunReport, planned_trials, run_optimization
from services.trading.optimize.search_space import SearchSpace, SearchSpaceError
from services.trading.optimize.trial import COMPLETE, FAILED, INFEASIBLE

errors = Console(stderr=True)
EXPECTED_ERRORS = (
    BacktestConfigError,
    SearchSpaceError,
    RunBusy,
    LookupError,
    ConfigError,
    EmbeddedServerError,
    MigrationError,
    asyncpg.PostgresError,
    OSError,
    ConnectionError,
)
TOP_TRIALS = 10

HELP = """Search the engine's settings for the ones that would have done best on history, each trial a
full backtest through the engine's own decision core, run in parallel on Ray.

**The space**: `--param name=low:high[:step]`, `name=low:high:log` or `name=a,b,c` (repeatable),
or `--space FILE` (JSON: `{"reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5}}`). Tunable:
min_confidence, stop_loss_atr_multiplier, reward_risk_ratio, base_allocation_pct,
max_position_pct, max_sector_pct, max_portfolio_heat (the run's tier; `aggressive.min_confidence`
for another), max_open_positions, absolute_position_cap, reserve_siphon_pct,
trailing_activation_fraction, daily_loss_limit_pct, single_position_loss_pct,
gradual_entry_tranches, signal_fast_window, signal_slow_window.

**Walk-forward** (`--walk-forward --train 252 --test 63`): search each train period, run the winner
unseen on the test period after it, and report the stitched out-of-sample record beside the
in-sample one. The report ends with the Deflated Sharpe Ratio of the best trial and the
Probability of Backtest Overfitting (docs/optimization.md says how to read them).

Trials run on a local Ray on this machine's cores, or on the cluster at `--ray-address`
(`STONKS_RAY_ADDRESS`). The run is stored as it goes; Ctrl-C stops it, `--resume ID` finishes it.
"""


def _fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def optimize_command(
    start: str = typer.Option(None, "--start", help="First session of the history (YYYY-MM-DD)."),
    end: str = typer.Option(None, "--end", help="Last session of the history (YYYY-MM-DD)."),
    capital: str = typer.Option("10000", "--capital", help="Initial capital of every trial, in dollars."),
    tier: str = typer.Option("moderate", "--tier", help="Risk tier: conservative, moderate or aggressive."),
    tickers: list[str] = typer.Option(
        None, "--tickers", help="Tickers, comma-separated (default: every ticker with daily bars)."
    ),
    signals: str = typer.Option(
        "momentum",
        "--signals",
        help="Where recommendations come from: momentum (the sample SMA crossover signal, default; "
        "its windows can be tuned), database (the recommendations table) or csv.",
    ),
    csv: Path = typer.Option(None, "--csv", help="CSV of recommendations; implies --signals csv."),
    slippage_bps: str = typer.Option(
        "5", "--slippage-bps", help="Slippage against the trader, in basis points."
    ),
    commission: str = typer.Option("0", "--commission", help="Commission per order, in dollars."),
    fill_timing: str = typer.Option("bar_range", "--fill-timing", help="bar_range (default) or live."),
    space_file: Path = typer.Option(None, "--space", help="The search space as a JSON file."),
    params: list[str] = typer.Option(
        None, "--param", help="A parameter to search: name=low:high[:step], name=low:high:log or name=a,b,c."
    ),
    objective: str = typer.Option(
        "sharpe",
        "--objective",
        help="What to maximise: sharpe, sortino, calmar, total_return or profit_factor.",
    ),
    min_trades: int = typer.Option(0, "--min-trades", help="A trial with fewer closed trades is infeasible."),
    max_drawdown: str = typer.Option(
        None, "--max-drawdown", help="A trial with a deeper drawdown is infeasible (0.2 or 20%)."
    ),
    sampler: str = typer.Option(
        "tpe", "--sampler", help="tpe (default), random or grid (ranges need a step)."
    ),
    seed: int = typer.Option(0, "--seed", help="The same seed and space give the same trials."),
    trials: int = typer.Option(50, "--trials", help="Trials per search (per window in a walk-forward run)."),
    walk_forward: bool = typer.Option(
        False, "--walk-forward", help="Walk-forward analysis instead of one search."
    ),
    train: int = typer.Option(None, "--train", help="Walk-forward: sessions of each train period."),
    test: int = typer.Option(None, "--test", help="Walk-forward: sessions of each test period."),
    step: int = typer.Option(
        None, "--step", help="Walk-forward: sessions between windows (default: --test)."
    ),
    anchored: bool = typer.Option(
        False, "--anchored", help="Walk-forward: every train period starts at --start."
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="An existing Ray cluster (default STONKS_RAY_ADDRESS; unset: a local Ray).",
    ),
    cpus: int = typer.Option(
        None, "--cpus", min=1, help="Cores of the local Ray (default STONKS_RAY_NUM_CPUS, all)."
    ),
    resume: str = typer.Option(
        None, "--resume", help="Finish an interrupted run by its id: only missing trials run."
    ),
) -> None:
    try:
        app_config = load_config()
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(app_config.log_level)
    if resume:
        try:
            run_id = UUID(resume)
        except ValueError:
            _fail(f"--resume {resume!r} is not an optimization id (a UUID)")
        config = None
    else:
        run_id = uuid4()
        config = _config(locals())
    try:
        report = asyncio.run(_run(run_id, config, app_config, ray_address, cpus))
    except EXPECTED_ERRORS as exc:
        _fail(str(exc).strip() or type(exc).__name__)
    console = Console()
    print_report(console, report)
    typer.echo(f"optimization {run_id} stored")


optimize_command.__doc__ = HELP


def _config(options: dict[str, Any]) -> OptimizationConfig:
    if not options["start"] or not options["end"]:
        _fail("--start and --end are required (or --resume ID)")
    try:
        if options["space_file"] and options["params"]:
            _fail("give the space as --space FILE or as --param items, not both")
        if options["space_file"]:
            space = SearchSpace.from_file(options["space_file"])
        elif options["params"]:
            space = SearchSpace.from_items(options["params"])
        else:
            _fail("nothing to search: give --param name=low:high (repeatable) or --space FILE")
        walk = None
        if options["walk_forward"]:
            walk = {
                "train": options["train"],
                "test": options["test"],
                "step": options["step"],
                "anchored": options["anchored"],
            }
        elif any(options[k] is not None for k in ("train", "test", "step")) or options["anchored"]:
            _fail("--train, --test, --step and --anchored go with --walk-forward")
        return OptimizationConfig.parse(
            start_date=options["start"],
            end_date=options["end"],
            initial_capital=options["capital"],
            risk_tier=options["tier"],
            tickers=options["tickers"],
            signals=None if options["csv"] else options["signals"],
            csv_path=options["csv"],
            slippage_bps=options["slippage_bps"],
            commission_per_order=options["commission"],
            fill_timing=options["fill_timing"],
            space=space,
            objective=options["objective"],
            min_trades=options["min_trades"],
            max_drawdown=options["max_drawdown"],
            sampler=options["sampler"],
            seed=options["seed"],
            trials=options["trials"],
            walk_forward=walk,
        )
    except (BacktestConfigError, SearchSpaceError) as exc:
        _fail(str(exc))


async def _run(
    run_id: UUID,
    config: OptimizationConfig | None,
    app_config: AppConfig,
    ray_address: str | None,
    cpus: int | None,
) -> RunReport:
    connection = await connect(resolve_server_urls(app_config).database_url)
    try:
        await upgrade(connection)
        await store.mark_orphaned_runs(connection)
        if config is None:
            config = await _stored_config(connection, run_id)
        data = await load_backtest_data(connection, config.backtest)
        await store.create_run(
            connection,
            run_id,
            config.kind,
            config.to_json(),
            config.objective.value,
            planned_trials(config, data),
        )
        errors.print(
            f"optimization {run_id} ({config.kind}, {config.sampler.value}, objective {config.objective.value})",
            highlight=False,
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
        ) as bar:
            task = bar.add_task("starting Ray", total=planned_trials(config, data))

            def advance(done: int, planned: int, what: str) -> None:
                bar.update(task, completed=done, total=planned, description="optimizing")

            return await run_optimization(
                connection,
                run_id,
                config,
                data,
                ray_address=ray_address or app_config.ray_address,
                num_cpus=cpus or app_config.ray_num_cpus,
                progress=advance,
            )
    finally:
        await connection.close()


async def _stored_config(connection: asyncpg.Connection, run_id: UUID) -> OptimizationConfig:
    run = await store.fetch_run(connection, run_id)
    if run is None:
        raise LookupError(f"no optimization {run_id}")
    if run["status"] == "completed":
        raise LookupError(f"optimization {run_id} is already completed: nothing to resume")
    return OptimizationConfig.parse(**run["config"])


# -- the report ------------------------------------------------------------------------------------


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.2%}" if percent else f"{value:.4g}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def print_report(console: Console, report: RunReport) -> None:
    if report.config.walk_forward is None:
        _print_search(console, report)
    else:
        _print_walk_forward(console, report)


def _print_search(console: Console, report: RunReport) -> None:
    c = report.config
    space = c.space
    table = Table(title=f"top trials by {c.objective.value} of {len(report.trials)}")
    for column in ("trial", *space.names, c.objective.value, "return", "max drawdown", "trades", "state"):
        table.add_column(column, justify="left" if column == "state" else "right")
    ranked = sorted(
        (o for o in report.trials if o.state != FAILED and o.value is not None),
        key=lambda o: (o.state != COMPLETE, -o.value, o.number),
    )
    for o in ranked[:TOP_TRIALS]:
        shown = space.normalise(o.params)
        m = o.metrics
        table.add_row(
            str(o.number),
            *(_fmt(shown[n]) for n in space.names),
            _fmt(o.value),
            _fmt(m.total_return if m else None, percent=True),
            _fmt(m.max_drawdown if m else None, percent=True),
            _fmt(m.trade_count if m else None),
            o.state if o.state == COMPLETE else f"{o.state}: {o.reason}",
        )
    console.print(table)
    counts = {s: sum(1 for o in report.trials if o.state == s) for s in (COMPLETE, INFEASIBLE, FAILED)}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    if report.best is None:
        console.print(
            "no feasible trial: loosen --min-trades / --max-drawdown or widen the space", highlight=False
        )
    else:
        console.print(
            f"best: trial {report.best.number}, {c.objective.value} {_fmt(report.best.value)}: "
            f"{_params(space.normalise(report.best.params))}",
            highlight=False,
        )
    _print_overfitting(console, report.dsr, report.pbo)
    if report.importance:
        console.print(
            "importance: " + ", ".join(f"{k} {v:.2f}" for k, v in report.importance.items()), highlight=False
        )


def _print_overfitting(console: Console, dsr: dict | None, pbo: dict | None) -> None:
    if dsr and "error" not in dsr:
        console.print(
            f"Deflated Sharpe Ratio of trial {dsr['best_trial']}: {_fmt(dsr['dsr'])} (daily Sharpe "
            f"{_fmt(dsr['observed_sharpe'])} against {_fmt(dsr['expected_max_sharpe'])} expected of the best of "
            f"{dsr['trials']} worthless trials); above 0.95: unlikely to be luck",
            highlight=False,
        )
    elif dsr:
        console.print(f"Deflated Sharpe Ratio: not computed ({dsr['error']})", highlight=False)
    if pbo and "error" not in pbo:
        console.print(
            f"Probability of Backtest Overfitting: {_fmt(pbo['pbo'])} over {pbo['combinations']:,} combinations "
            f"(the in-sample best lost out-of-sample in {_fmt(pbo['probability_of_loss'], percent=True)}); "
            "above 0.5: the search mostly found noise",
            highlight=False,
        )
    elif pbo:
        console.print(f"Probability of Backtest Overfitting: not computed ({pbo['error']})", highlight=False)


def _print_walk_forward(console: Console, report: RunReport) -> None:
    c = report.config
    name = c.objective.value
    table = Table(title=f"walk-forward windows ({name}: in-sample vs out-of-sample)")
    for column in ("window", "train", "test", "best parameters", "IS", "OOS", "OOS/IS", "OOS return", "PBO"):
        table.add_column(column)
    for w in report.windows:
        is_ = (w.get("in_sample") or {}).get(name)
        oos = w.get("out_of_sample") or {}
        pbo = w.get("pbo") or {}
        table.add_row(
            str(w["window_index"]),
            f"{w['train_start']} .. {w['train_end']}",
            f"{w['test_start']} .. {w['test_end']}",
            _params(w.get("best_params") or {}) or (w.get("error") or "-"),
            _fmt(is_),
            _fmt(oos.get(name)),
            _fmt(w.get("degradation")),
            _fmt(oos.get("total_return"), percent=True),
            _fmt(pbo.get("pbo")),
        )
    console.print(table)
    s = report.summary
    oos = s.get("out_of_sample_metrics") or {}
    if oos:
        console.print(
            f"stitched out-of-sample: return {_fmt(oos['total_return'], percent=True)}, Sharpe {_fmt(oos['sharpe'])}, "
            f"max drawdown {_fmt(oos['max_drawdown'], percent=True)} over {oos['sessions']} sessions",
            highlight=False,
        )
    elif s.get("stitch_error"):
        console.print(f"out-of-sample curves not stitched: {s['stitch_error']}", highlight=False)
    console.print(
        f"{name}: in-sample mean {_fmt(s.get('in_sample_mean'))}, out-of-sample mean {_fmt(s.get('out_of_sample_mean'))}, "
        f"walk-forward efficiency (OOS/IS) {_fmt(s.get('degradation'))}",
        highlight=False,
    )
    if s.get("stability"):
        stability = Table(title="parameter stability across windows")
        for column in (
            "parameter",
            "chosen per window",
            "distinct",
            "modal share",
            "coefficient of variation",
        ):
            stability.add_column(column)
        for p in s["stability"]:
            stability.add_row(
                p["name"],
                ", ".join(_fmt(v) for v in p["values"]),
                str(p["distinct"]),
                _fmt(p["modal_share"], percent=True),
                _fmt(p["coefficient_of_variation"]),
            )
        console.print(stability)
