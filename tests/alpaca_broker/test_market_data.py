"""Alpaca's market data reaches the engine's price tables through the real SDK against the
local Alpaca: daily and minute bars (over many pages), latest prices on the engine's
schedule, retries through a 429 storm, the feed setting on every request."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import asyncpg
import pytest

from services.alpaca_broker import connection
from services.alpaca_broker.fake_server import FakeAlpaca, FakeBar
from services.alpaca_broker.market_data import Cadence
from services.shared.config import AppConfig
from services.shared.db import create_pool
from services.shared.ports import free_port
from services.trading.core import trading_window
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import NEW_YORK
from services.trading.market.price_book import PriceBook
from tests.alpaca_broker.harness import KEY, MIDDAY, OPEN, SECRET, SESSION, api_of, price_feed_of

pytestmark = pytest.mark.integration

SYMBOLS = ("ABC", "XYZ")


@pytest.fixture
async def market(database_url):
    pool = await create_pool(database_url)
    clock = SimulatedClock(MIDDAY)
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, now=clock.now).start()
    await pool.executemany(
        "INSERT INTO tickers (ticker, sector) VALUES ($1, 'Technology')",
        [(s,) for s in (*SYMBOLS, "NOPE", "OLD")],
    )
    fake.set_asset("OLD", status="inactive", tradable=False)
    yield pool, clock, fake
    fake.stop()
    await pool.close()
    trading_window.forget_adopted_sessions()


def _sessions_before(day: date, count: int) -> list[date]:
    days, candidate = [], day
    while len(days) < count:
        candidate -= timedelta(days=1)
        if trading_window.xnys_session_times(candidate) is not None:
            days.append(candidate)
    return sorted(days)


def _daily(day: date, cents: int) -> FakeBar:
    price = Decimal(cents) / 100
    return FakeBar(
        datetime.combine(day, time.min, NEW_YORK).astimezone(UTC),
        price,
        price + Decimal("1.37"),
        price - Decimal("0.91"),
        price + Decimal("0.25"),
        1_000_000 + cents,
    )


def _minute(start: datetime, cents: int) -> FakeBar:
    price = Decimal(cents) / 100
    return FakeBar(
        start, price, price + Decimal("0.05"), price - Decimal("0.03"), price + Decimal("0.01"), 300 + cents
    )


async def _rows(pool, interval: str) -> set[tuple]:
    rows = await pool.fetch(
        "SELECT ticker, ts, open, high, low, close, volume FROM price_bars WHERE interval = $1", interval
    )
    return {tuple(r) for r in rows}


def _expected(symbol: str, bar: FakeBar, ts: datetime) -> tuple:
    return (symbol, ts, bar.o, bar.h, bar.l, bar.c, bar.v)


async def test_backfill_brings_daily_and_minute_bars_over_many_pages(market) -> None:
    pool, clock, fake = market
    days = _sessions_before(SESSION, 30)
    minutes = [OPEN + timedelta(minutes=i) for i in range(150)]  # past MIDDAY: some not ended yet
    for n, symbol in enumerate(SYMBOLS):
        # Today's daily bar is served too (Alpaca's bar of the session in progress): not stored.
        fake.set_bars(
            symbol, "1Day", [_daily(d, 18_715 + 100 * n + i) for i, d in enumerate([*days, SESSION])]
        )
        fake.set_bars(symbol, "1Min", [_minute(m, 18_800 + 7 * n + i) for i, m in enumerate(minutes)])
    fake.bars_page_limit = 25
    feed = price_feed_of(fake, pool, clock)

    await feed.tick()  # the first: every ticker's history

    expected_daily = {
        _expected(s, b, trading_window.xnys_session_times(d)[1])
        for s in SYMBOLS
        for d, b in zip(days, fake.bars[(s, "1Day")])
    }
    assert await _rows(pool, "1d") == expected_daily
    expected_minutes = {
        _expected(s, b, b.t + timedelta(minutes=1))
        for s in SYMBOLS
        for b in fake.bars[(s, "1Min")]
        if b.t + timedelta(minutes=1) <= MIDDAY
    }
    assert len(expected_minutes) == 2 * 120
    assert await _rows(pool, "1m") == expected_minutes
    bar_queries = [params for path, params in fake.data_queries if path == "/v2/stocks/bars"]
    assert sum(1 for params in bar_queries if params.get("page_token")) >= 10  # it paged
    assert {params["symbols"] for params in bar_queries} == {"ABC,XYZ"}  # NOPE, OLD: not Alpaca's
    assert {params["feed"] for params in bar_queries} == {"iex"}
    assert {params["adjustment"] for params in bar_queries} == {"split"}
    # The engine prices on them: the last minute that ended.
    quote = await PriceBook(pool).quote("XYZ", MIDDAY)
    last_ended = fake.bars[("XYZ", "1Min")][119]
    assert (quote.price, quote.as_of, quote.interval) == (last_ended.c, MIDDAY, "1m")


async def test_latest_prices_arrive_on_the_engines_schedule(market) -> None:
    pool, clock, fake = market
    fake.set_price("XYZ", "50.00")
    fake.set_price("ABC", "12.3456")
    feed = price_feed_of(fake, pool, clock)
    book = PriceBook(pool)

    await feed.tick()
    assert await _rows(pool, "last") == {
        ("XYZ", MIDDAY, *[Decimal("50.00")] * 4, 100),
        ("ABC", MIDDAY, *[Decimal("12.3456")] * 4, 100),
    }
    assert (await book.quote("XYZ", MIDDAY)).price == Decimal("50.00")

    clock.advance(timedelta(seconds=5))
    fake.set_price("XYZ", "50.40")
    await feed.tick()  # 5 s after the last read: not due
    assert len(await _rows(pool, "last")) == 2

    clock.advance(timedelta(seconds=15))
    await feed.tick()
    moved = MIDDAY + timedelta(seconds=5)
    assert ("XYZ", moved, *[Decimal("50.40")] * 4, 100) in await _rows(pool, "last")

    # No trade for 20 minutes, the quotes moved on: the book's middle, at the quote's time.
    clock.advance(timedelta(minutes=20))
    fake.set_quote("XYZ", "51.00", "51.04")
    await feed.tick()
    quote = await book.quote("XYZ", clock.now())
    assert (quote.price, quote.as_of, quote.interval) == (Decimal("51.02"), clock.now(), "last")

    # After the close no latest price is read; once the session's bar has settled it is read,
    # the calendar checked again and `last` rows older than a week dropped.
    close = trading_window.session_times(SESSION)[1]
    fake.set_bars("XYZ", "1Day", [_daily(SESSION, 5_010)])
    old = ("XYZ", MIDDAY - timedelta(days=8), *[Decimal(1)] * 4, 0)
    await pool.execute("INSERT INTO price_bars VALUES ($1, 'last', $2, $3, $4, $5, $6, $7)", *old)
    recent = await _rows(pool, "last") - {old}
    checks = fake.request_count("GET", "/v2/calendar")
    clock.set(close + timedelta(minutes=10))
    await feed.tick()
    assert await _rows(pool, "1d") == set()  # not settled yet
    clock.set(close + timedelta(minutes=16))
    await feed.tick()
    assert await _rows(pool, "1d") == {_expected("XYZ", fake.bars[("XYZ", "1Day")][0], close)}
    assert await _rows(pool, "last") == recent
    assert fake.request_count("GET", "/v2/calendar") == checks + 1


async def test_a_ticker_added_while_running_gets_its_history_at_once(market) -> None:
    pool, clock, fake = market
    days = _sessions_before(SESSION, 5)
    fake.set_bars("NEW", "1Day", [_daily(d, 2_000 + i) for i, d in enumerate(days)])
    fake.set_bars("NEW", "1Min", [_minute(OPEN, 2_100)])
    feed = price_feed_of(fake, pool, clock)
    await feed.tick()
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('NEW', 'Technology')")

    clock.advance(timedelta(seconds=1))
    await feed.tick()

    assert {row[1] for row in await _rows(pool, "1d")} == {trading_window.session_times(d)[1] for d in days}
    assert {row[1] for row in await _rows(pool, "1m")} == {OPEN + timedelta(minutes=1)}


async def test_a_429_storm_on_the_data_endpoints_is_waited_out(market) -> None:
    pool, clock, fake = market
    fake.set_price("XYZ", "50.00")
    fake.set_bars("XYZ", "1Day", [_daily(d, 5_000 + i) for i, d in enumerate(_sessions_before(SESSION, 40))])
    fake.bars_page_limit = 10
    feed = price_feed_of(fake, pool, clock)
    assert feed.data.limiter is feed.trading.limiter  # one budget for the account

    await feed.symbols()
    fake.fail_next(429, 3)
    assert await feed.catch_up_daily(["XYZ"], MIDDAY) == 40
    fake.fail_next(429, 3)
    assert await feed.refresh_latest(["XYZ"], MIDDAY) == 1
    assert feed.data.retries == 6
    assert fake.request_count("GET", "/v2/stocks/bars") == 3 + 4  # 3 refused, then 4 pages
    assert fake.rate_limited == 0  # the server's own limit was never reached


async def test_a_round_that_runs_out_of_retries_is_tried_again(market) -> None:
    pool, clock, fake = market
    fake.set_price("XYZ", "50.00")
    feed = price_feed_of(fake, pool, clock, cadence=Cadence(latest_seconds=0.05))
    fake.fail_next(503, 4 * 3)  # more than a call's four attempts
    stop = asyncio.Event()
    running = asyncio.create_task(feed.run(stop))
    try:
        for _ in range(400):
            if await _rows(pool, "last") and feed.calendar_checked:
                break
            await asyncio.sleep(0.025)
        assert await _rows(pool, "last") == {("XYZ", MIDDAY, *[Decimal("50.00")] * 4, 100)}
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert feed.calendar_checked


@pytest.mark.parametrize("feed_setting", [None, "sip"])
async def test_the_feed_setting_reaches_every_data_request(market, feed_setting) -> None:
    pool, clock, fake = market
    fake.set_price("XYZ", "50.00")
    config = AppConfig(
        broker="alpaca",
        alpaca_api_key=KEY,
        alpaca_secret_key=SECRET,
        alpaca_data_url=fake.base_url,
        **({"alpaca_data_feed": feed_setting} if feed_setting else {}),
    )
    feed = connection.open_price_feed(config, pool, clock, api_of(fake))
    await feed.symbols()
    await feed.refresh_latest(["XYZ"], MIDDAY)
    await feed.refresh_minutes(["XYZ"], MIDDAY)
    await feed.catch_up_daily(["XYZ"], MIDDAY)
    assert {params["feed"] for _, params in fake.data_queries} == {feed_setting or "iex"}
    assert len(fake.data_queries) == 4


async def test_stonks_run_with_alpaca_checks_the_calendar_and_fills_the_price_tables(
    database_url, redis_client, redis_url, tmp_path
) -> None:
    """The wiring, as the owner runs it: `stonks run` with STONKS_BROKER=alpaca checks
    Alpaca's calendar before the engine starts, then backfills daily bars (wall clock)."""
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET).start()
    settled = trading_window.previous_session_close(datetime.now(UTC) - timedelta(minutes=15))
    days = [*_sessions_before(settled.astimezone(NEW_YORK).date(), 9), settled.astimezone(NEW_YORK).date()]
    fake.set_bars("XYZ", "1Day", [_daily(d, 4_200 + i) for i, d in enumerate(days)])
    pool = await create_pool(database_url)
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('XYZ', 'Technology')")
    environment = {
        **os.environ,
        "STONKS_BROKER": "alpaca",
        "STONKS_ALPACA_API_KEY": KEY,
        "STONKS_ALPACA_SECRET_KEY": SECRET,
        "STONKS_ALPACA_URL": fake.base_url,
        "STONKS_ALPACA_STREAM_URL": fake.stream_url,
        "STONKS_ALPACA_DATA_URL": fake.base_url,
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
        "STONKS_API_PORT": str(free_port()),
    }
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.trading",
        "run",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            if await pool.fetchval("SELECT count(*) FROM price_bars WHERE interval = '1d'") == len(days):
                break
            assert job.returncode is None, "stonks run ended early"
            await asyncio.sleep(0.1)
    finally:
        job.send_signal(signal.SIGINT)
        output = (await asyncio.wait_for(job.communicate(), 60))[0].decode()
        fake.stop()
        await pool.close()
    assert await _count_daily(database_url) == len(days), output
    assert "alpaca's calendar and clock agree with the exchange calendar" in output
    calendar_asked = next(i for i, (_, path, _) in enumerate(fake.requests) if path == "/v2/calendar")
    bars_asked = next(i for i, (_, path, _) in enumerate(fake.requests) if path == "/v2/stocks/bars")
    assert calendar_asked < bars_asked


async def _count_daily(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval("SELECT count(*) FROM price_bars WHERE interval = '1d'")
    finally:
        await connection.close()
