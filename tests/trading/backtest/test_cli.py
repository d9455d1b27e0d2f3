"""`stonks-trading backtest`: one-line errors with exit 1 for bad input, and a run that stores
itself, prints its summary and writes its equity curve."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.trading.cli_harness import run_cli
from tests.trading.sample_market import load_sample_market


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--start", "2010-06-01", "--end", "2010-01-04"),
            "end date 2010-01-04 is before start date 2010-06-01",
        ),
        (
            ("--start", "2010-01-04", "--end", "2010-06-01", "--tier", "reckless"),
            "unknown risk tier 'reckless'",
        ),
        (
            ("--start", "2010-01-04", "--end", "2010-06-01", "--capital", "-5"),
            "initial capital must be a positive",
        ),
        (("--start", "4 January", "--end", "2010-06-01"), "start_date '4 January' is not a date"),
        (
            ("--start", "2010-01-04", "--end", "2010-06-01", "--fill-timing", "sometimes"),
            "fill timing 'sometimes' is not one of bar_range, live",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message) -> None:
    result = run_cli("backtest", *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
async def test_a_run_stores_itself_prints_a_summary_and_writes_the_plot(
    db, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await load_sample_market(db, ("AAPL", "IBM"), date(2007, 6, 1), date(2008, 12, 31))

    unknown = run_cli(
        "backtest", "--start", "2008-01-02", "--end", "2008-12-31", "--tickers", "AAPL,NOPE", env=cli_env
    )
    assert unknown.returncode == 1 and "unknown ticker(s) NOPE" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    png = tmp_path / "curve.png"
    ok = run_cli(
        "backtest",
        "--start",
        "2008-01-02",
        "--end",
        "2008-12-31",
        "--capital",
        "25000",
        "--tier",
        "aggressive",
        "--tickers",
        "AAPL,IBM",
        "--signals",
        "momentum",
        "--fill-timing",
        "live",
        "--plot",
        str(png),
        env=cli_env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "final value" in ok.stdout and "max drawdown" in ok.stdout
    if png.exists():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"equity curve: {png}" in ok.stdout
    else:
        assert "matplotlib is not installed" in ok.stderr
    assert await db.fetchval("SELECT status FROM backtest_runs") == "completed"
    assert await db.fetchval("SELECT config->'fill'->>'timing' FROM backtest_runs") == "live"
