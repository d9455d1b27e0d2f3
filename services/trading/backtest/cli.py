"""`stonks-trading backtest`: run a backtest from the command line, with a progress bar, a
summary table and an equity-curve PNG. The run is stored like the API's runs.

Bad input (end before start, an unknown tier or ticker, an unreadable CSV) ends with one line
on stderr and exit code 1, like every other command.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.shared.config import ConfigError, load_config
from services.shared.db import connect
from services.shared.embedded import EmbeddedServerError
from services.shared.logging import configure_logging
from services.shared.migrations import MigrationError, upgrade
from services.shared.runtime import resolve_server_urls
from services.trading.backtest.backtester import Backtester
from services.trading.backtest.config import BacktestConfig, BacktestConfigError
from services.trading.backtest.results import BacktestResult
from services.trading.backtest.run_store import load_backtest_data, save_backtest

errors = Console(stderr=True)
EXPECTED_ERRORS = (
    BacktestConfigError,
    ConfigError,
    EmbeddedServerError,
    MigrationError,
    asyncpg.PostgresError,
    OSError,
)


def _fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def backtest_command(
    start: str = typer.Option(..., "--start", help="First session of the backtest (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last session of the backtest (YYYY-MM-DD)."),
    capital: str = typer.Option("10000", "--capital", help="Initial capital in dollars."),
    tier: str = typer.Option("moderate", "--tier", help="Risk tier: conservative, moderate or aggressive."),
    tickers: list[str] = typer.Option(
        None,
        "--tickers",
        help="Tickers, comma-separated (default: every ticker with daily bars in the range).",
    ),
    signals: str = typer.Option(
        None,
        "--signals",
        help="Where recommendations come from: database (the "
        "recommendations table, default), momentum (the sample "
        "SMA 10/30 signal) or csv.",
    ),
    csv: Path = typer.Option(
        None,
        "--csv",
        help="CSV of recommendations (ticker, action, confidence, "
        "date or generated_at); implies --signals csv.",
    ),
    slippage_bps: str = typer.Option(
        "5", "--slippage-bps", help="Slippage against the trader, in basis points."
    ),
    commission: str = typer.Option("0", "--commission", help="Commission per order, in dollars."),
    fill_timing: str = typer.Option(
        "bar_range",
        "--fill-timing",
        help="bar_range: stops and take-profits meet each daily bar's low and high, tranches a "
        "session apart (default); live: a session timed as the live engine replays it (the open "
        "is the price all session, tranches 30 minutes apart), what the live stack would have done.",
    ),
    plot: Path = typer.Option(
        None,
        "--plot",
        help="Where to write the equity-curve PNG (default: "
        "backtest-ID.png in the data directory's backtests folder).",
    ),
) -> None:
    """Replay history through the engine's own decision core and report what would have happened."""
    try:
        config = BacktestConfig.parse(
            start_date=start,
            end_date=end,
            initial_capital=capital,
            risk_tier=tier,
            tickers=tickers,
            signals=signals,
            csv_path=csv,
            slippage_bps=slippage_bps,
            commission_per_order=commission,
            fill_timing=fill_timing,
        )
        app_config = load_config()
    except (BacktestConfigError, ConfigError) as exc:
        _fail(str(exc))
    configure_logging(app_config.log_level)
    try:
        result, backtest_id = asyncio.run(_run(config, app_config))
    except EXPECTED_ERRORS as exc:
        _fail(str(exc).strip() or type(exc).__name__)
    typer.echo(f"backtest {backtest_id} stored")
    Console().print(summary_table(result))
    _plot(result, plot or app_config.data_dir / "backtests" / f"backtest-{backtest_id}.png")
    if not result.completed:
        _fail(f"the backtest failed part-way ({result.error}); the partial result is stored")


async def _run(config: BacktestConfig, app_config) -> tuple[BacktestResult, object]:
    connection = await connect(resolve_server_urls(app_config).database_url)
    try:
        await upgrade(connection)
        data = await load_backtest_data(connection, config)
        if data.recommendations is not None and not data.recommendations:
            errors.print(
                "note: no recommendations in the range; write some with `stonks-trading signals` or "
                "replay the sample signal with `--signals momentum`",
                highlight=False,
            )
        with Progress(
            TextColumn("backtesting"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=errors
        ) as progress:
            task = progress.add_task("backtest", total=1.0)
            result = Backtester(data).run(config, lambda done: progress.update(task, completed=done))
        return result, await save_backtest(connection, result)
    finally:
        await connection.close()


def summary_table(result: BacktestResult) -> Table:
    c, m = result.config, result.metrics
    table = Table(title=f"Backtest {c.start_date} .. {c.end_date} ({result.status})", show_header=False)
    acted = sum(1 for d in result.decisions if d.acted)
    pf = "inf" if m.profit_factor == float("inf") else f"{m.profit_factor:.2f}"
    rows = [
        ("initial capital", f"${c.initial_capital:,.2f}"),
        ("final value", f"${m.final_value:,.2f}"),
        ("total return", f"{m.total_return:+.2%}"),
        ("Sharpe (whole run)", f"{m.sharpe_ratio:.2f}"),
        ("Sharpe (last 30 days)", f"{m.sharpe_ratio_30d:.2f}"),
        ("max drawdown", f"{m.max_drawdown:.2%}"),
        ("trades", str(m.trade_count)),
        ("win rate", f"{m.win_rate:.1%}"),
        ("profit factor", pf),
        ("open at the end", str(len(result.open_positions))),
        ("decisions", f"{len(result.decisions)} ({acted} acted)"),
        ("risk tier", f"{c.risk_tier.value} -> {result.final_risk_tier}"),
        ("reserve pool", f"${result.reserve_balance:,.2f}"),
        ("wash sales", f"{len(result.tax.wash_sales)} (${result.tax.disallowed_loss:,.2f} deferred)"),
        ("breaker trips", str(sum(1 for e in result.events if e.kind.startswith("circuit_breaker")))),
        ("bars", f"{result.bars:,} over {result.sessions:,} sessions"),
        ("data gaps", str(len(result.data_gaps))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if result.error:
        table.add_row("error", result.error)
    return table


def _plot(result: BacktestResult, path: Path) -> None:
    try:
        from services.trading.backtest.plot import write_equity_png

        typer.echo(f"equity curve: {write_equity_png(result, path)}")
    except ImportError:
        errors.print("equity-curve plot skipped: matplotlib is not installed", highlight=False)
