"""`stonks-trading backtest`: one-line errors with exit 1 for bad input, and a run that stores
itself, prints its summary and writes its equity curve."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from services.shared.embedded import ServerUrls
from services.trading.market import market_store, sample_data


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.trading", "backtest", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


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
    result = _cli(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
async def test_a_run_stores_itself_prints_a_summary_and_writes_the_plot(
    db, database_url: str, server_urls: ServerUrls, tmp_path: Path
) -> None:
    await market_store.upsert_tickers(db, sample_data.sample_tickers(("AAPL", "IBM")))
    bars = [
        b
        for b in sample_data.load_sample_bars(("AAPL", "IBM"))
        if date(2007, 6, 1) <= b.ts.date() <= date(2008, 12, 31)
    ]
    async with db.transaction():
        await market_store.insert_bars(db, bars)
    env = {
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": server_urls.redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
    }

    unknown = _cli("--start", "2008-01-02", "--end", "2008-12-31", "--tickers", "AAPL,NOPE", env=env)
    assert unknown.returncode == 1 and "unknown ticker(s) NOPE" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    png = tmp_path / "curve.png"
    ok = _cli(
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
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "final value" in ok.stdout and "max drawdown" in ok.stdout
    if png.exists():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"equity curve: {png}" in ok.stdout
    else:
        assert "matplotlib is not installed" in ok.stderr
    assert await db.fetchval("SELECT status FROM backtest_runs") == "completed"
    assert await db.fetchval("SELECT config->'fill'->>'timing' FROM backtest_runs") == "live"
