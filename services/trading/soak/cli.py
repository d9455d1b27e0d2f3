"""`stonks-trading soak`: the long reliability soak, run by hand, with a progress bar and a
printed and saved report (report.txt, report.json, memory.png). Exit code 1 when an
invariant fails, so a script can tell.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from services.shared.config import ConfigError, load_config
from services.shared.embedded import EmbeddedServerError
from services.trading.soak.driver import SoakPlan, SoakProgress, run_soak
from services.trading.soak.stack import ALL_FAULTS

errors = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _faults(value: str) -> tuple[str, ...]:
    if value.strip() in ("", "none"):
        return ()
    if value.strip() == "all":
        return ALL_FAULTS
    return tuple(part.strip() for part in value.split(",") if part.strip())


def soak_command(
    minutes: float = typer.Option(
        15.0, "--minutes", help="How long the load lasts (settling and checks come after)."
    ),
    rate: float = typer.Option(3.0, "--rate", help="Recommendations written per second."),
    faults: str = typer.Option(
        "none", "--faults", help="none, all, or a comma-separated list of: " + ", ".join(ALL_FAULTS) + "."
    ),
    fault_every: float = typer.Option(20.0, "--fault-every", help="Mean seconds between two faults."),
    seed: int = typer.Option(
        12, "--seed", help="Seed of the rows written, the prices and the fault schedule."
    ),
    polling_interval: float = typer.Option(
        30.0, "--polling-interval", help="The engine's polling interval, in seconds (its default: 30)."
    ),
    memory_every: float = typer.Option(10.0, "--memory-every", help="Seconds between two memory samples."),
    out: Path = typer.Option(
        None,
        "--out",
        help="Directory for the report, the chart, the engine's log and "
        "the soak's own servers (default: soak/<time> in the data "
        "directory).",
    ),
    tracemalloc: bool = typer.Option(
        False,
        "--tracemalloc",
        help="Trace the engine process's allocations and "
        "write their growth by traceback to the "
        "report's directory (slows it down).",
    ),
    api: bool = typer.Option(
        True, "--api/--no-api", help="Serve the API in the engine process, as `run` does."
    ),
    keep_data: bool = typer.Option(
        False,
        "--keep-data",
        help="Keep the soak's database and Valkey data next to the report, to query them afterwards.",
    ),
) -> None:
    """Soak the real stack (engine process, paper broker, private PostgreSQL and Valkey) at a
    steady recommendation rate, with faults if asked, then check the invariants and report
    them with the engine's resident memory over time."""
    try:
        config = load_config()
        plan = SoakPlan(
            seconds=minutes * 60,
            rate=rate,
            faults=_faults(faults),
            fault_every_seconds=fault_every,
            seed=seed,
            polling_interval_seconds=polling_interval,
            memory_every_seconds=memory_every,
            tracemalloc=tracemalloc,
            api=api,
            keep_data=keep_data,
        )
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    directory = out or config.data_dir / "soak" / datetime.now().strftime("%Y%m%d-%H%M%S")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors) as progress:
        task = progress.add_task("starting the servers and the engine", total=plan.seconds)

        def show(state: SoakProgress) -> None:
            memory = f", engine RSS {state.rss_mb:.0f} MB" if state.rss_mb is not None else ""
            progress.update(
                task,
                completed=min(state.elapsed, plan.seconds),
                description=f"{state.phase}: {state.tries} recommendations, {state.faults} faults{memory}",
            )

        try:
            report = asyncio.run(run_soak(plan, directory, show))
        except (EmbeddedServerError, OSError, RuntimeError) as exc:
            _fail(str(exc))
        progress.update(task, completed=plan.seconds, description="done")
    typer.echo(report.text())
    typer.echo(
        f"report: {directory / 'report.txt'}, {directory / 'report.json'}, chart: {directory / 'memory.png'}"
    )
    if not report.passed:
        raise typer.Exit(code=1)
