"""`stonks broker check` prints the account through the real SDK and trades nothing; bad keys
end with Alpaca's reason and never echo the secret."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

from services.alpaca_broker.fake_server import FakeAlpaca
from services.shared.ports import free_port


@pytest.fixture
def fake():
    server = FakeAlpaca(api_key="PKCHECK", secret_key="the-secret-key", cash=Decimal("2500.50")).start()
    yield server
    server.stop()


def _run(fake: FakeAlpaca, secret: str, *command: str, **more: str) -> subprocess.CompletedProcess[str]:
    """The command as the owner runs it (its own process: it configures logging for itself)."""
    environment = {
        "STONKS_BROKER": "alpaca",
        "STONKS_ALPACA_API_KEY": "PKCHECK",
        "STONKS_ALPACA_SECRET_KEY": secret,
        "STONKS_ALPACA_URL": fake.base_url,
        "COLUMNS": "200",
        **more,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.trading", *(command or ("broker", "check"))],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        timeout=120,
    )


def test_check_prints_the_account_and_only_reads(fake: FakeAlpaca) -> None:
    result = _run(fake, "the-secret-key")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert fake.account_id in output and "$2,500.50" in output
    assert {method for method, _, _ in fake.requests} == {"GET"}


def test_bad_keys_fail_with_alpacas_reason(fake: FakeAlpaca) -> None:
    result = _run(fake, "not-the-key")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "not authorized" in output and "HTTP 401" in output
    assert "not-the-key" not in output


def test_run_with_bad_keys_stops_at_once_with_one_line(fake: FakeAlpaca, tmp_path) -> None:
    """`stonks run` checks the account before it starts anything: bad keys end the job with
    Alpaca's reason on one line and status 1, no traceback, no server started, no order sent."""
    result = _run(
        fake,
        "not-the-key",
        "run",
        STONKS_DATA_DIR=str(tmp_path),
        STONKS_API_PORT=str(free_port()),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "not-the-key" not in output
    [line] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "not authorized" in line and "HTTP 401" in line
    assert {method for method, _, _ in fake.requests} == {"GET"}
    assert not (tmp_path / "servers").exists()  # no database or Redis was started


@pytest.mark.integration
async def test_prices_reads_the_daily_history_with_a_progress_bar(
    fake: FakeAlpaca, database_url, redis_url
) -> None:
    """`stonks broker prices`: the calendar checked, then every ticker Alpaca trades gets its
    daily bars of the days asked for (again: a bar stored before is replaced by Alpaca's)."""
    from datetime import UTC, datetime, time, timedelta

    from services.alpaca_broker.fake_server import FakeBar
    from services.alpaca_broker.market_data import settled_close
    from services.shared.db import connect
    from services.trading.core.replay_instants import sessions_between
    from services.trading.core.trading_window import NEW_YORK, session_times

    now = datetime.now(UTC)
    last = settled_close(now).astimezone(NEW_YORK).date()
    days = sessions_between(now.astimezone(NEW_YORK).date() - timedelta(days=20), last)
    price = Decimal("31.40")
    fake.set_bars(
        "XYZ",
        "1Day",
        [FakeBar(datetime.combine(d, time.min, NEW_YORK), price, price, price, price, 1000) for d in days],
    )
    connection = await connect(database_url)
    await connection.execute(
        "INSERT INTO tickers (ticker, sector) VALUES ('XYZ', 'Technology'), ('NOPE', 'Unknown')"
    )
    await connection.execute(
        "INSERT INTO price_bars VALUES ('XYZ', '1d', $1, 9, 9, 9, 9, 1)", session_times(days[0])[1]
    )
    try:
        result = _run(
            fake,
            "the-secret-key",
            "broker",
            "prices",
            "--days",
            "20",
            STONKS_DATABASE_URL=database_url,
            STONKS_REDIS_URL=redis_url,
            STONKS_ALPACA_DATA_URL=fake.base_url,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert f"wrote {len(days)} daily and 0 minute bars of 1 tickers from Alpaca (iex feed)" in output
        assert "reading daily bars" in output and f"{len(days)}/{len(days)}" in output
        stored = await connection.fetch("SELECT ts, close FROM price_bars WHERE ticker = 'XYZ' ORDER BY ts")
        assert [(r["ts"], r["close"]) for r in stored] == [(session_times(d)[1], price) for d in days]
    finally:
        await connection.close()
    assert {method for method, _, _ in fake.requests} == {"GET"}
