"""The main job: `stonks-trading demo` replays real history through the live stack and its
summary is what the database holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import asyncpg
import pytest

from services.shared.embedded import ServerUrls
from services.trading.live.main_job import DEMO_DATABASE

# The demo makes its own database (DEMO_DATABASE) on the server it is given: on a shared
# server, the demo tests take turns on one pytest-xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo_database")]


def _value(output: str, label: str) -> str:
    match = re.search(rf"{re.escape(label)}\s*│\s*(.+?)\s*│", output)
    assert match, f"{label!r} not in the summary:\n{output}"
    return match.group(1)


async def test_demo_replays_a_year_and_its_summary_matches_the_database(server_urls: ServerUrls) -> None:
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": server_urls.database_url,
        "STONKS_REDIS_URL": server_urls.redis_url,
        "COLUMNS": "120",
        "STONKS_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.trading",
            "demo",
            "--start",
            "2011-03-01",
            "--end",
            "2012-02-29",
            "--no-serve",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    database_url = server_urls.database_url.rsplit("/", 1)[0] + f"/{DEMO_DATABASE}"
    db = await asyncpg.connect(database_url)
    try:
        trades = await db.fetchval("SELECT count(*) FROM closed_trades")
        stops = await db.fetchval(
            "SELECT count(*) FROM closed_trades WHERE exit_reason IN ('stop_loss', 'trailing_stop')"
        )
        profits = await db.fetchval("SELECT count(*) FROM closed_trades WHERE exit_reason = 'take_profit'")
        reserve = await db.fetchval("SELECT balance_after FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1")
        realized = await db.fetchval("SELECT sum(pnl) FROM closed_trades")
        sessions = await db.fetchval("SELECT count(*) FROM portfolio_snapshots")
    finally:
        await db.close()
    assert trades > 0 and stops > 0 and reserve > 0
    assert int(_value(out, "closed trades")) == trades
    assert _value(out, "stopped out / took profit") == f"{stops} / {profits}"
    assert _value(out, "Reserve Pool") == f"${reserve:,.2f}"
    assert _value(out, "realized P&L") == f"${realized:,.2f}"
    assert int(_value(out, "sessions replayed")) == sessions  # one snapshot per session close
