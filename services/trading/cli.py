"""`stonks-trading`: the command line of the trading engine.

Every command reads its settings from the environment (`STONKS_*`, see the README). With no
`STONKS_DATABASE_URL` / `STONKS_REDIS_URL` it starts private PostgreSQL and Valkey servers
under `STONKS_DATA_DIR`. Errors end with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.alpaca_broker.local_venue import LocalAlpacaReport
from services.shared.config import AppConfig, BrokerName, ConfigError, load_config
from services.shared.db import connect
from services.shared.embedded import EmbeddedServerError, EmbeddedServers
from services.shared.logging import configure_logging
from services.shared.migrations import MigrationError
from services.shared.runtime import redacted, resolve_server_urls
from services.trading.backtest.cli import backtest_command
from services.trading.core.replay_instants import sessions_between
from services.trading.core.tax_report import TaxReport
from services.trading.core.trading_window import NEW_YORK
from services.trading.live import main_job, tax_report_source
from services.trading.market import setup_steps
from services.trading.market.csv_import import CsvImportError
from services.trading.optimize.cli import optimize_command
from services.trading.reports import tax_report_files
from services.trading.soak.cli import soak_command

app = typer.Typer(
    help="Autonomous trading engine of stonks-oracle: sets up its servers and data, trades, "
    "backtests and serves its dashboard.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
servers_app = typer.Typer(help="Start, stop or inspect the private PostgreSQL and Valkey servers.")
db_app = typer.Typer(help="Database schema management.")
data_app = typer.Typer(help="Load market data: the bundled sample or your own CSV.")
app.add_typer(servers_app, name="servers")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
broker_app = typer.Typer(
    help="The broker account (STONKS_BROKER=alpaca): check it without trading, read its prices."
)
app.add_typer(broker_app, name="broker")
app.command("backtest")(backtest_command)
app.command("optimize")(optimize_command)
app.command("soak")(soak_command)

console = Console(stderr=True)
T = TypeVar("T")

# Failures a user can act on: reported in one line, never as a traceback.
EXPECTED_ERRORS = (
    ConfigError,
    CsvImportError,
    EmbeddedServerError,
    MigrationError,
    asyncpg.PostgresError,
    OSError,
)


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _config() -> AppConfig:
    try:
        config = load_config()
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(config.log_level)
    return config


def _with_database(
    work: Callable[[asyncpg.Connection], Awaitable[T]], *, migrate: bool = True, database: str | None = None
) -> T:
    """Run `work` on a connection to the configured database (or to `database` on the same
    server), schema upgraded first."""
    config = _config()

    async def main() -> T:
        url = resolve_server_urls(config).database_url
        if database is not None:
            url = urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
        connection = await connect(url)
        try:
            if migrate:
                await setup_steps.upgrade_schema(connection)
            return await work(connection)
        finally:
            await connection.close()

    try:
        return asyncio.run(main())
    except EXPECTED_ERRORS as exc:
        _fail(str(exc).strip() or type(exc).__name__)


@servers_app.command("start")
def servers_start() -> None:
    """Start the private servers (or find them running) and print their URLs, passwords masked
    (each is kept in a file beside the servers' data, named in the output)."""
    config = _config()
    servers = EmbeddedServers(config.data_dir)
    try:
        urls = servers.ensure_running()
    except EXPECTED_ERRORS as exc:
        _fail(str(exc))
    # The passwords stay in their files: what this prints may well end up in a log.
    typer.echo(
        f"database: {redacted(urls.database_url)}  (password in {servers.postgres.password_file})\n"
        f"redis:    {redacted(urls.redis_url)}  (password in {servers.valkey.password_file})"
    )


@servers_app.command("stop")
def servers_stop() -> None:
    """Stop the private servers cleanly (PostgreSQL fast shutdown, Valkey saves and exits)."""
    EmbeddedServers(_config().data_dir).stop()
    typer.echo("private servers stopped")


@servers_app.command("status")
def servers_status() -> None:
    """Say whether each private server is running."""
    for name, running in EmbeddedServers(_config().data_dir).is_running().items():
        typer.echo(f"{name}: {'running' if running else 'stopped'}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations from infra/migrations, each once, in order."""
    applied = _with_database(setup_steps.upgrade_schema, migrate=False)
    typer.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def load_sample() -> setup_steps.LoadReport:
    with _progress() as progress:
        task = progress.add_task("loading sample bars", total=None)

        async def work(connection: asyncpg.Connection) -> setup_steps.LoadReport:
            return await setup_steps.load_sample_market(connection, lambda n: progress.advance(task, n))

        report = _with_database(work)
        progress.update(task, total=report.bars, completed=report.bars)
    typer.echo(
        f"loaded {report.bars} real daily bars for {report.tickers} tickers and "
        f"{report.earnings_dates} earnings dates; source: {report.source}"
    )
    return report


@data_app.command("load-sample")
def data_load_sample() -> None:
    """Load the bundled real market sample (AAPL, GOOG, IBM, MSFT daily bars 2000-2013,
    split-adjusted, with sectors and SEC earnings dates). Safe to run again."""
    load_sample()


@data_app.command("import-csv")
def data_import_csv(
    path: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        help="CSV with columns ticker,date,open,high,low,close,volume.",
    ),
    sector: str = typer.Option("Unknown", help="Sector recorded for tickers the database does not know yet."),
) -> None:
    """Load your own bars from a CSV file: all rows or none (bad rows are listed by line number)."""
    written = _with_database(lambda connection: setup_steps.import_csv(connection, path, sector))
    typer.echo(f"loaded {written} bars from {path}")


@app.command("signals")
def signals(
    tickers: list[str] = typer.Option(None, "--ticker", "-t", help="Only these tickers (repeatable)."),
) -> None:
    """Write recommendations from the momentum signal (SMA 10/30 crossover, confidence from the
    20-session change) for the loaded daily bars. Already-written ones are kept, not doubled."""
    written = _with_database(lambda connection: setup_steps.write_momentum_signals(connection, tickers))
    typer.echo(f"wrote {written} new recommendations")


def _api_server(config: AppConfig, port: int | None, *, telegram: bool = False) -> main_job.ApiServer:
    """Serves the API and dashboard in the job's own event loop, next to its engine; with
    `telegram`, the owner's Telegram bot too when a token is configured (docs/telegram.md)."""

    async def serve(runtime_parts: main_job.RuntimeParts) -> None:
        import uvicorn

        from services.trading.api.runtime import attached_runtime
        from services.trading.app import create_app

        runtime = attached_runtime(config, runtime_parts)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(runtime), host=config.api_host, port=port or config.api_port, log_level="warning"
            )
        )
        phone = None
        if telegram:
            from services.trading.notifications.channel_config import load_channel_config
            from services.trading.telegram.control import start_if_configured

            phone = await start_if_configured(runtime, load_channel_config())
        try:
            await server.serve()
        except SystemExit:  # uvicorn's way of saying it could not start: the job goes on without it
            console.print("[bold red]error:[/] the API and dashboard could not start (see above)")
        except asyncio.CancelledError:
            # The job is stopping and uvicorn was cut off mid-serve: its own shutdown closes the
            # connections and ends the app's lifespan, which would otherwise die with a traceback.
            if server.started:
                await server.shutdown()
            raise
        finally:
            if phone is not None:
                await phone.stop()

    return serve


def _require_free_port(host: str, port: int) -> None:
    """Refuse to start a long job whose dashboard could not listen."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            _fail(f"port {port} on {host} is already in use; choose another with --port or STONKS_API_PORT")


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Address to listen on (default STONKS_API_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to listen on (default STONKS_API_PORT, 8000)."),
) -> None:
    """Serve the HTTP API and dashboard only (no engine loop): for a second reader of a
    running account, or to look at a finished demo."""
    import uvicorn

    config = _config()
    _with_database(lambda connection: asyncio.sleep(0))  # servers up and schema current first
    os.environ["STONKS_API_RUN_ENGINE"] = "false"  # this command serves; `run` trades
    uvicorn.run(
        "services.trading.app:app",
        host=host or config.api_host,
        port=port or config.api_port,
        log_level=config.log_level.lower(),
    )


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date (YYYY-MM-DD)")


@app.command("demo")
def demo(
    start: str = typer.Option(
        None, help="First session to replay (YYYY-MM-DD; default 2011-03-01, with alpaca-local 2011-09-01)."
    ),
    end: str = typer.Option(
        None,
        help="Last session to replay (default 2013-02-28, with alpaca-local 2011-10-31; the sample ends 2013-03-01).",
    ),
    capital: float = typer.Option(10_000, min=100, help="Starting cash of the demo account, in dollars."),
    port: int = typer.Option(None, help="Port for the API and dashboard (default STONKS_API_PORT, 8000)."),
    serve_after: bool = typer.Option(
        True, "--serve/--no-serve", help="Keep the dashboard up after the replay."
    ),
    broker: main_job.DemoBroker = typer.Option(
        main_job.DemoBroker.PAPER,
        "--broker",
        help="`paper`: the built-in paper broker. `alpaca-local`: the Alpaca adapter (alpaca-py) "
        "against a local Alpaca server on 127.0.0.1 whose prices follow the replay; no network, "
        "no keys.",
    ),
) -> None:
    """**The main job.** Start the private servers, build a fresh demo database with the real
    sample market and its momentum signals, then replay the sessions through the live stack
    (engine, paper broker, Redis queues) on a simulated clock, with the dashboard up. Prints a
    summary of what the engine did; your real account's database is never touched. With
    `--broker alpaca-local` the orders go through the Alpaca adapter to a local Alpaca server,
    and the summary adds the broker's side: orders, fills, positions against the engine's
    books, the stops resting at the broker and the reconciliations."""
    config = _config()
    if "STONKS_LOG_LEVEL" not in os.environ:
        configure_logging("WARNING")  # the progress bar tells the story; warnings still show
    first, last = main_job.DEMO_WINDOWS[broker]
    plan = main_job.DemoPlan(
        _parse_day(start, "--start") if start else first,
        _parse_day(end, "--end") if end else last,
        Decimal(str(capital)),
        serve_after,
        config.api_host,
        port or config.api_port,
        broker,
    )
    if plan.end < plan.start:
        _fail(f"--end {plan.end} is before --start {plan.start}")
    if plan.serve:
        _require_free_port(plan.host, plan.port)

    progress = _progress()

    def finished(summary: main_job.DemoSummary) -> None:
        progress.stop()  # the summary goes below a finished bar, not under a live one
        _print_summary(summary)
        if plan.serve:
            console.print(f"the dashboard stays up at http://{plan.host}:{plan.port}; Ctrl-C stops it")

    async def work() -> None:
        with progress:
            loading = progress.add_task("loading the sample market", total=None)
            database_url, redis_url, report, signals_written = await main_job.prepare_demo(
                config, lambda n: progress.advance(loading, n)
            )
            progress.update(loading, total=report.bars, completed=report.bars)
            console.print(
                f"{report.bars} real daily bars of {report.tickers} tickers ({report.source}); "
                f"{signals_written} momentum recommendations"
            )
            if plan.serve:
                console.print(f"dashboard and API: http://{plan.host}:{plan.port}  (Ctrl-C to stop)")
            days = sessions_between(plan.start, plan.end)
            replaying = progress.add_task("replaying sessions", total=len(days))
            serve_api = _api_server(config, plan.port) if plan.serve else None
            await main_job.replay_demo(
                database_url,
                redis_url,
                plan,
                lambda day: progress.update(replaying, advance=1, description=f"replaying {day}"),
                finished,
                serve_api,
            )

    try:
        asyncio.run(work())
    except EXPECTED_ERRORS as exc:
        _fail(str(exc).strip() or type(exc).__name__)


def _print_summary(demo: main_job.DemoSummary) -> None:
    from rich.table import Table

    summary = demo.replay
    table = Table(title="demo replay: what the engine did", show_header=False)
    change = summary.final_value - summary.starting_value
    path = " -> ".join(
        [demo.tier_moves[0].previous_tier if demo.tier_moves else "unchanged"]
        + [f"{m.new_tier} ({m.at.date()})" for m in demo.tier_moves]
    )
    for label, value in [
        ("sessions replayed", summary.sessions),
        ("recommendations decided", summary.decisions),
        ("acted on", summary.acted),
        ("closed trades", summary.trades),
        ("stopped out / took profit", f"{summary.stop_exits} / {summary.take_profit_exits}"),
        ("realized P&L", f"${summary.realized_pnl:,.2f}"),
        ("account value", f"${summary.starting_value:,.2f} -> ${summary.final_value:,.2f} ({change:+,.2f})"),
        ("Reserve Pool", f"${summary.reserve:,.2f}"),
        ("risk tier", path),
        ("tier verdicts", f"{len(demo.tier_moves)} changed, {demo.tier_held} held"),
    ]:
        table.add_row(label, str(value))
    console = Console()
    console.print(table)
    if demo.tier_moves:
        moves = Table(title="risk tier moves (GET /api/trading/risk-tier/history has every verdict)")
        for column in ("session", "move", "why"):
            moves.add_column(column)
        for m in demo.tier_moves:
            moves.add_row(str(m.at.date()), f"{m.previous_tier} -> {m.new_tier}", m.reason)
        console.print(moves)
    if demo.alpaca is not None:
        _print_alpaca_session(demo.alpaca, console)


def _print_alpaca_session(report: LocalAlpacaReport, console: Console) -> None:
    from rich.table import Table

    table = Table(title="the local Alpaca: the broker's side", show_header=False)
    agreed = "agree" if report.books_agree else "DIFFER"
    for label, value in [
        (
            "market orders (engine's jobs)",
            f"{report.market_orders} placed, {report.market_filled} filled, {report.market_rejected} rejected",
        ),
        (
            "stops resting at the broker",
            f"{report.stops_placed} placed or replaced, {report.stops_filled} filled",
        ),
        (
            "cash: broker / engine's books",
            f"${report.broker_cash:,.2f} / ${report.books_cash:,.2f} ({agreed})",
        ),
        (
            "reconciliations",
            f"{report.reconciliations} run, {report.reconciliations_agreed} agreed",
        ),
        ("REST requests", f"{report.requests} ({report.throttled} refused by the 200/min limit)"),
    ]:
        table.add_row(label, value)
    console.print(table)
    positions = Table(
        title="positions: at the broker, in the engine's books, and the stop resting at the broker"
    )
    for column in ("ticker", "broker shares", "engine shares", "resting stop"):
        positions.add_column(column, justify="left" if column == "ticker" else "right")
    for p in report.positions:
        stop = f"sell {_shares(p.stop_quantity)} @ {p.stop_price}" if p.stop_price is not None else "none"
        positions.add_row(p.ticker, _shares(p.at_broker), _shares(p.in_books), stop)
    if not report.positions:
        positions.add_row("(flat)", "0", "0", "none")
    console.print(positions)


def _shares(quantity: Decimal) -> str:
    """A share count as written by a person: 3, 0.5 (the broker says 3.0, the books 3)."""
    return format(quantity.normalize(), "f")


@app.command("tax-report")
def tax_report(
    year: int = typer.Option(..., "--year", min=1900, max=9999, help="The tax year, e.g. 2025."),
    out: Path = typer.Option(
        Path("."), "--out", help="Directory for tax-report-YEAR.csv and tax-report-YEAR.html."
    ),
    demo_database: bool = typer.Option(
        False, "--demo", help=f"Report on the demo's database ({main_job.DEMO_DATABASE}), not the account's."
    ),
) -> None:
    """The year's capital gains from the engine's tax lots: Form 8949 rows (code W for wash
    sales) split short and long term, the Schedule D totals, the lots open at year end with
    their adjusted basis and unrealised gain, and the wash-sale losses still deferred. Writes
    a CSV and a printable HTML page. Not tax advice: it sees only this account (docs/tax-report.md)."""
    today = datetime.now(NEW_YORK).date()
    if year > today.year:
        _fail(f"--year {year} has not begun (today is {today})")

    async def work(connection: asyncpg.Connection) -> TaxReport:
        return await tax_report_source.tax_report(connection, year, today)

    report = _with_database(work, database=main_job.DEMO_DATABASE if demo_database else None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv_path, html_path = out / f"tax-report-{year}.csv", out / f"tax-report-{year}.html"
        csv_path.write_text(tax_report_files.to_csv(report), encoding="utf-8")
        html_path.write_text(tax_report_files.to_html(report), encoding="utf-8")
    except OSError as exc:
        _fail(str(exc))
    _print_tax_summary(report)
    typer.echo(f"wrote {csv_path} and {html_path}")


def _print_tax_summary(report: TaxReport) -> None:
    from rich.table import Table

    table = Table(title=f"tax report {report.year} (year end {report.year_end}): Schedule D totals")
    for column in (
        "part",
        "Schedule D line",
        "rows",
        "proceeds",
        "cost basis",
        "adjustments (W)",
        "gain or loss",
    ):
        table.add_column(column, justify="left" if column in ("part", "Schedule D line") else "right")
    for name, t in (("short term", report.short_totals), ("long term", report.long_totals)):
        table.add_row(
            name, t.schedule_d_lines, str(t.rows), f"{t.proceeds:,.2f}", f"{t.cost_basis:,.2f}",
            f"{t.adjustment:,.2f}", f"{t.gain:,.2f}",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"net gain or loss {report.net_gain:,.2f}; {len(report.open_lots)} lots open at year end, "
        f"unrealised {report.unrealized_gain:,.2f}; wash-sale losses deferred {report.pending_deferred:,.2f} "
        f"({len(report.pending_deferrals)}); losses a purchase may still wash: {len(report.unsettled_losses)}",
        highlight=False,
    )


@app.command("report")
def report(
    backtest_id: str = typer.Option(
        None, "--backtest", help="A stored backtest's id; default: the live account."
    ),
    out: Path = typer.Option(
        None, "--out", help="The HTML file (default tearsheet-live.html or tearsheet-ID.html)."
    ),
    demo_database: bool = typer.Option(
        False, "--demo", help=f"Read the demo's database ({main_job.DEMO_DATABASE}), not the account's."
    ),
) -> None:
    """A one-file HTML tearsheet of the live account or a stored backtest: returns against an
    equal-weight index of the sample tickers, drawdown periods, monthly returns, rolling Sharpe
    and volatility (pyfolio), with the Reserve Pool, tier changes, breaker events and skip reasons."""
    from uuid import UUID

    from services.trading.reports import tearsheet, tearsheet_sources

    try:
        run_id = UUID(backtest_id) if backtest_id else None
    except ValueError:
        _fail(f"--backtest {backtest_id!r} is not a backtest id (a UUID)")
    today = datetime.now(NEW_YORK).date()

    async def work(connection: asyncpg.Connection) -> tearsheet.Tearsheet:
        if run_id is None:
            return await tearsheet_sources.live_tearsheet(connection, today)
        return await tearsheet_sources.backtest_tearsheet(connection, run_id)

    try:
        sheet = _with_database(work, database=main_job.DEMO_DATABASE if demo_database else None)
    except LookupError as exc:
        _fail(str(exc))
    path = out or Path(f"tearsheet-{run_id or 'live'}.html")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tearsheet.render_html(sheet), encoding="utf-8")
    except OSError as exc:
        _fail(str(exc))
    h = sheet.headline
    typer.echo(
        f"{sheet.subject}\nfinal value {h.final_value:,.2f}, return {h.total_return:+.2%}, Sharpe "
        f"{h.sharpe_ratio:.2f}, max drawdown {h.max_drawdown:.2%}, win rate {h.win_rate:.1%}, "
        f"{h.trade_count} trades\nwrote {path}"
    )


def _require_alpaca(config: AppConfig) -> None:
    if config.broker is not BrokerName.ALPACA:
        _fail(
            "STONKS_BROKER is paper: the built-in paper broker has no account or market data (set STONKS_BROKER=alpaca)"
        )


@broker_app.command("check")
def broker_check() -> None:
    """Connect to the broker and print the account, the market clock, positions and open
    orders. Places, changes and cancels nothing."""
    from rich.table import Table

    from services.alpaca_broker import check as broker_check_report
    from services.alpaca_broker import connection as alpaca_connection
    from services.alpaca_broker.api import BrokerRejected

    config = _config()
    _require_alpaca(config)

    async def check():
        return await broker_check_report.check(alpaca_connection.open_api(config), config.trading_mode)

    try:
        report = asyncio.run(check())
    except (*EXPECTED_ERRORS, ConfigError, BrokerRejected) as exc:
        _fail(getattr(exc, "reason", None) or str(exc).strip() or type(exc).__name__)
    table = Table(title=f"Alpaca {config.trading_mode.value} account", show_header=False)
    for label, value in report.rows():
        table.add_row(label, value)
    console.print(table)


@broker_app.command("prices")
def broker_prices(
    days: int = typer.Option(
        400, min=1, max=3650, help="Read the daily bars of this many calendar days back (again)."
    ),
) -> None:
    """Check Alpaca's calendar against the exchange's, then read from Alpaca's market data the
    daily bars of the last `--days` days and the latest session's minute bars of every ticker
    Alpaca trades, into the price tables. Bars already stored are replaced by Alpaca's (after a
    split: its adjusted history). `stonks run` does this by itself for new bars."""
    from services.alpaca_broker import connection as alpaca_connection
    from services.alpaca_broker.api import BrokerRejected
    from services.alpaca_broker.market_data import session_open, settled_close
    from services.shared.db import create_pool
    from services.trading.core.clock import WallClock

    config = _config()
    _require_alpaca(config)

    async def work(progress: Progress) -> tuple[int, int, int]:
        url = resolve_server_urls(config).database_url
        connection = await connect(url)
        try:
            await setup_steps.upgrade_schema(connection)
        finally:
            await connection.close()
        pool = await create_pool(url)
        try:
            clock = WallClock()
            prices = alpaca_connection.open_price_feed(
                config, pool, clock, alpaca_connection.open_api(config)
            )
            await prices.check_calendar()
            symbols = await prices.symbols()
            now = clock.now()
            since = now.astimezone(NEW_YORK).date() - timedelta(days=days)
            sessions = sessions_between(since, settled_close(now).astimezone(NEW_YORK).date())
            task = progress.add_task("reading daily bars", total=len(sessions) * len(symbols))
            daily = await prices.catch_up_daily(
                symbols, now, lambda n: progress.advance(task, n), since=since
            )
            progress.update(task, total=progress.tasks[task].completed)
            return len(symbols), daily, await prices.read_minutes(symbols, session_open(now), now)
        finally:
            await pool.close()

    try:
        with _progress() as progress:
            tickers, daily, minutes = asyncio.run(work(progress))
    except (*EXPECTED_ERRORS, BrokerRejected) as exc:
        _fail(getattr(exc, "reason", None) or str(exc).strip() or type(exc).__name__)
    typer.echo(
        f"wrote {daily} daily and {minutes} minute bars of {tickers} tickers from Alpaca "
        f"({config.alpaca_data_feed.value} feed)"
    )


@app.command("run")
def run(
    paper_broker: bool = typer.Option(
        True,
        "--paper-broker/--external-broker",
        help="Fill orders with the built-in paper broker, or leave the queue to the broker service.",
    ),
    capital: float = typer.Option(10_000, min=0, help="Starting cash of a new paper account, in dollars."),
    port: int = typer.Option(None, help="Port for the API and dashboard (default STONKS_API_PORT, 8000)."),
) -> None:
    """Run the engine for real on the wall clock: decision loop, stops, breakers, the
    paper broker (by default) and the API, until Ctrl-C. The engine trades only once enabled
    (`STONKS_TRADING_ENABLED=true` or through the API)."""
    from services.alpaca_broker.api import BrokerRejected

    config = _config()
    _require_free_port(config.api_host, port or config.api_port)
    try:
        asyncio.run(
            main_job.run_live(
                config,
                paper_broker=paper_broker,
                capital=Decimal(str(capital)),
                serve_api=_api_server(config, port, telegram=True),
            )
        )
    except BrokerRejected as exc:  # bad keys, a closed account: Alpaca's reason, not a traceback
        _fail(f"the broker refused to start: {exc.reason}")
    except EXPECTED_ERRORS as exc:
        _fail(str(exc).strip() or type(exc).__name__)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
