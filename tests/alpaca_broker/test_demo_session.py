"""The demo's market replayed through the Alpaca adapter end to end (`./stonks demo --broker
alpaca-local`, short): the live engine decides on the sample's recommendations, its order
jobs go through the queue to the real adapter (alpaca-py), which places them at the local
Alpaca server whose prices follow the replay. Afterwards the engine's own books (its tax lots,
the fills it applied) must be what the server holds, every buy must have been protected by a
stop resting at the server, and every reconciliation must have agreed. The command's printed
summary must say what the demo's database holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal

import asyncpg
import pytest

from services.alpaca_broker.local_venue import LocalAlpacaVenue
from services.alpaca_broker.resting_stops import broker_stop_price
from services.shared.db import connect, create_pool
from services.trading.live.main_job import DEMO_DATABASE
from services.trading.live.replay import Replay
from services.trading.market import setup_steps
from tests.trading.engine_harness import close_pool

# The demo makes its own database (DEMO_DATABASE) on the server it is given: on a shared
# server, the demo tests take turns on one pytest-xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo_database")]

# Four weeks of 2011 in which the engine buys AAPL and IBM in three tranches each (the stop is
# replaced at each) and GOOG, whose stop then fills at the broker on a gap down.
START, END = date(2011, 9, 6), date(2011, 9, 30)
CAPITAL = Decimal(10_000)


@pytest.fixture
async def replayed(database_url, redis_client):
    connection = await connect(database_url)
    try:
        await setup_steps.load_sample_market(connection)
        await setup_steps.write_momentum_signals(connection)
    finally:
        await connection.close()
    pool = await create_pool(database_url, max_size=8)
    replay = Replay(pool, redis_client, START, END, capital=CAPITAL, venue=LocalAlpacaVenue)
    try:
        summary = await replay.run()
        yield summary, replay.venue, pool
    finally:
        await replay.close()
        await close_pool(pool)


async def test_the_engines_books_are_what_the_local_alpaca_holds_and_every_buy_was_protected(
    replayed,
) -> None:
    summary, venue, pool = replayed
    fake = venue.fake
    with fake.lock:
        orders = list(fake.orders.values())
        held = {symbol: p.qty for symbol, p in fake.positions.items()}
        cash = fake.cash
    market = [o for o in orders if o.type == "market"]
    stops = [o for o in orders if o.type == "stop"]
    assert summary.acted >= 3 and all(o.status == "filled" for o in market), [o.status for o in market]

    # Positions and cash: the engine's own books, figure for figure.
    books = {
        r["ticker"]: r["shares"]
        for r in await pool.fetch(
            """SELECT ticker, sum(remaining_quantity) AS shares FROM tax_lots
               WHERE status = 'open' AND remaining_quantity > 0 GROUP BY ticker"""
        )
    }
    assert books and books == held
    moved = Decimal(0)
    for fill in await pool.fetch(
        "SELECT side, quantity, price, fee FROM applied_fills WHERE status = 'filled'"
    ):
        notional = fill["quantity"] * fill["price"]
        moved += notional - fill["fee"] if fill["side"] == "sell" else -notional - fill["fee"]
    assert cash == CAPITAL + moved
    assert await pool.fetchval("SELECT cash FROM broker_account") == cash

    # Every filled order at the broker is a fill in the engine's books, at the broker's price.
    applied = {
        r["client_order_id"]: (r["side"], r["quantity"], r["price"])
        for r in await pool.fetch("SELECT * FROM applied_fills WHERE status = 'filled'")
    }
    at_broker = {
        o.client_order_id: (o.side, o.filled_qty, o.filled_avg_price) for o in orders if o.status == "filled"
    }
    assert applied == at_broker

    # Every acted buy: a stop rested at the broker from its first fill until the position was
    # sold; one still held has it now, for all its shares, at the engine's level.
    buys = await pool.fetch(
        """SELECT d.ticker, min(f.filled_at) AS first_fill FROM trading_decisions d
           JOIN order_outbox o ON o.trading_decision_id = d.id
           JOIN broker_fills f ON f.client_order_id = o.client_order_id
           WHERE d.decision = 'act' AND d.side = 'buy' GROUP BY d.id, d.ticker"""
    )
    assert len(buys) >= 3
    for buy in buys:
        ticker, bought = buy["ticker"], buy["first_fill"]
        sold = min(
            (
                o.filled_at
                for o in orders
                if o.symbol == ticker and o.side == "sell" and o.filled_at and o.filled_at > bought
            ),
            default=None,
        )
        protecting = [
            o
            for o in stops
            if o.symbol == ticker and bought <= o.submitted_at and (sold is None or o.submitted_at < sold)
        ]
        assert protecting, f"the {ticker} bought at {bought} had no stop resting at the broker"
        if sold is None:
            [resting] = [o for o in protecting if o.open]
            level = await pool.fetchval(
                "SELECT stop_loss_price FROM position_stop_levels WHERE ticker = $1 AND active", ticker
            )
            assert (resting.qty, resting.stop_price) == (held[ticker], broker_stop_price(level))

    # A stop that filled at the broker is the engine's stop exit, at the broker's price.
    stop_fills = [o for o in stops if o.status == "filled"]
    assert stop_fills, "the window has a stop filled at the broker"
    exits = {
        (r["ticker"], r["exit_price"])
        for r in await pool.fetch(
            "SELECT * FROM closed_trades WHERE exit_reason IN ('stop_loss', 'trailing_stop')"
        )
    }
    assert {(o.symbol, o.filled_avg_price) for o in stop_fills} <= exits

    # Reconciled at the start, every week and at the end: nothing to find.
    runs = await pool.fetch("SELECT status FROM reconciliation_runs")
    assert len(runs) >= 3 and {r["status"] for r in runs} == {"agreed"}
    assert await pool.fetchval("SELECT count(*) FROM reconciliation_discrepancies") == 0

    # The summary the command prints says the same.
    report = await venue.report()
    assert report.books_agree and report.unprotected == ()
    assert (report.market_orders, report.stops_filled) == (len(market), len(stop_fills))


def _row(output: str, label: str) -> str:
    match = re.search(rf"{re.escape(label)}\s*│\s*(.+?)\s*│", output)
    assert match, f"{label!r} not in the summary:\n{output}"
    return match.group(1)


async def test_the_demo_command_prints_the_brokers_side_as_the_database_holds_it(server_urls) -> None:
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": server_urls.database_url,
        "STONKS_REDIS_URL": server_urls.redis_url,
        "COLUMNS": "160",
        "STONKS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "services.trading", "demo", "--broker", "alpaca-local"]
    window = ["--start", START.isoformat(), "--end", END.isoformat(), "--no-serve"]
    result = subprocess.run([*command, *window], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    db = await asyncpg.connect(server_urls.database_url.rsplit("/", 1)[0] + f"/{DEMO_DATABASE}")
    try:
        orders = await db.fetchval("SELECT count(*) FROM broker_orders WHERE order_type = 'market'")
        runs = await db.fetchval("SELECT count(*) FROM reconciliation_runs WHERE status = 'agreed'")
        held = await db.fetch(
            """SELECT ticker, sum(remaining_quantity) AS shares FROM tax_lots
               WHERE status = 'open' AND remaining_quantity > 0 GROUP BY ticker"""
        )
        cash = await db.fetchval("SELECT cash FROM broker_account")
    finally:
        await db.close()
    assert _row(out, "market orders (engine's jobs)") == f"{orders} placed, {orders} filled, 0 rejected"
    assert _row(out, "reconciliations") == f"{runs} run, {runs} agreed"
    assert _row(out, "cash: broker / engine's books") == f"${cash:,.2f} / ${cash:,.2f} (agree)"
    for position in held:
        shares = format(position["shares"].normalize(), "f")
        row = re.search(rf"│ {position['ticker']}\s*│\s*(\S+)\s*│\s*(\S+)\s*│\s*sell (\S+) @", out)
        assert row and row.groups() == (shares, shares, shares), out
