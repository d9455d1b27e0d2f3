"""Live prices from Alpaca's market data, into the price tables the engine reads.

With `STONKS_BROKER=alpaca` the engine prices on Alpaca's data (feed `STONKS_ALPACA_DATA_FEED`:
`iex`, free, by default; `sip` with a subscription), written to `price_bars` by the same
`insert_bars` the CSV import and the sample use, so the price book, stops, ATR and the rapid-move
rule read it as they read any bars:

- **Which tickers**: those in `tickers` that Alpaca has as an active, tradable asset (asked
  once per ticker and process); any other is logged once and left to whatever else writes its
  bars. A ticker seen for the first time (at start, or added later) is caught up at once: its
  daily bars since its latest stored one (400 days back for a new ticker) and the minute bars
  of the session in progress or the last one.
- **Daily bars** (`1d`, split-adjusted) after each close; stamped at the session's close (the
  sessions the engine trades on, adopted ones included), and only once that close is
  `DAILY_DELAY` old, so the closing prints are in.
- **Minute bars** (`1m`) every minute while the market is open and just after the close,
  re-reading the last minutes (Alpaca may complete a bar late); stamped at the minute's end,
  only once it has ended.
- **Latest prices** (`last`) every `latest_seconds` while the market is open: the last trade
  and the top of book, made one price by `core/last_price.py`.

Every page of every request takes its turn at the account's limiter and has the broker's retry
rules (`api.py`); the SDK's own paging is not used, as it would fetch every page in one call.
Prices come as JSON numbers; each is read as the shortest decimal naming the same float,
which is the text Alpaca wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import asyncpg
import structlog
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models import Bar, BarSet, Quote, Trade
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame

from services.alpaca_broker.api import AlpacaApi, AlpacaCalls, BrokerRejected, RetryPolicy
from services.alpaca_broker.calendar_check import cross_check_calendar
from services.alpaca_broker.outcomes import decimal_of
from services.alpaca_broker.rate_limit import SlidingWindowLimiter
from services.shared.faults import TRANSIENT_ERRORS
from services.shared.pause import pause_unless_stopped
from services.trading.core import trading_window
from services.trading.core.clock import Clock
from services.trading.core.last_price import LastTrade, TopOfBook, last_price
from services.trading.market import market_store
from services.trading.market.market_data import DAILY, LAST, PriceBar

log = structlog.get_logger(__name__)
BARS_PAGE = 10_000  # Alpaca's largest page
SYMBOLS_PER_REQUEST = 100  # many symbols in one request, but a URL of sane length
BACKFILL_DAYS = 400  # a new ticker's daily history: the signals' and ATR's warm-up and more
DAILY_DELAY = timedelta(minutes=15)  # a session's bar is read this long after its close
MINUTE_REREAD = timedelta(minutes=5)
MINUTE_GRACE = timedelta(minutes=5)  # minute bars are still read this long after the close
LATEST_SECONDS = 15.0
MINUTE_SECONDS = 60.0
LAST_KEPT = timedelta(days=7)  # `last` rows older than this are deleted after each close
ONE_MINUTE = TimeFrame.Minute


class AlpacaDataApi(AlpacaCalls):
    """The market data calls, one request each, under the account's limiter and retries."""

    def __init__(
        self,
        client: StockHistoricalDataClient,
        limiter: SlidingWindowLimiter,
        policy: RetryPolicy,
        *,
        feed: DataFeed = DataFeed.IEX,
    ) -> None:
        super().__init__(client, limiter, policy)
        self.feed = feed

    async def bar_pages(
        self, symbols: Sequence[str], timeframe: TimeFrame, start: datetime, end: datetime
    ) -> AsyncIterator[list[Bar]]:
        """The bars of `symbols` from `start` to `end`, a page at a time."""
        fields = StockBarsRequest(
            symbol_or_symbols=list(symbols),
            timeframe=timeframe,
            start=start,
            end=end,
            adjustment=Adjustment.SPLIT,
            feed=self.feed,
        ).to_request_fields()
        token = None
        while True:
            params = {**fields, "limit": BARS_PAGE, **({"page_token": token} if token else {})}
            page = await self.call("get bars", self.client.get, "/stocks/bars", params)
            yield [bar for bars in BarSet(page.get("bars") or {}).data.values() for bar in bars]
            token = page.get("next_page_token")
            if not token:
                return

    async def latest_trades(self, symbols: Sequence[str]) -> dict[str, Trade]:
        request = StockLatestTradeRequest(symbol_or_symbols=list(symbols), feed=self.feed)
        return await self.call("get latest trades", self.client.get_stock_latest_trade, request)

    async def latest_quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        request = StockLatestQuoteRequest(symbol_or_symbols=list(symbols), feed=self.feed)
        return await self.call("get latest quotes", self.client.get_stock_latest_quote, request)


def settled_close(now: datetime) -> datetime:
    """The latest session close whose daily bar is final by `now`."""
    return trading_window.previous_session_close(now - DAILY_DELAY)


def daily_bar(bar: Bar, settled: datetime) -> PriceBar | None:
    """Alpaca's daily bar (keyed by its New York date) as the engine's: stamped at that
    session's close; None for a day that is no session here or has not settled by `settled`."""
    times = trading_window.session_times(bar.timestamp.astimezone(trading_window.NEW_YORK).date())
    if times is None or times[1] > settled:
        return None
    return _price_bar(bar, DAILY, times[1])


def minute_bar(bar: Bar, now: datetime) -> PriceBar | None:
    """Alpaca's minute bar (keyed by its start) as the engine's, stamped at its end."""
    ends = bar.timestamp + timedelta(minutes=1)
    return _price_bar(bar, "1m", ends) if ends <= now else None


def _price_bar(bar: Bar, interval: str, ts: datetime) -> PriceBar | None:
    o, h, l, c = (decimal_of(x) for x in (bar.open, bar.high, bar.low, bar.close))
    if not (Decimal(0) < l <= min(o, c) and h >= max(o, c)):
        log.warning(
            "alpaca bar with inconsistent prices skipped", ticker=bar.symbol, at=bar.timestamp.isoformat()
        )
        return None
    return PriceBar(bar.symbol, interval, ts, o, h, l, c, int(bar.volume))


def last_price_row(symbol: str, trade: Trade | None, quote: Quote | None) -> PriceBar | None:
    price = last_price(
        None if trade is None else LastTrade(decimal_of(trade.price), int(trade.size), trade.timestamp),
        None
        if quote is None
        else TopOfBook(decimal_of(quote.bid_price), decimal_of(quote.ask_price), quote.timestamp),
    )
    if price is None:
        return None
    return PriceBar(symbol, LAST, price.at, price.price, price.price, price.price, price.price, price.volume)


@dataclass(frozen=True, slots=True)
class Cadence:
    latest_seconds: float = LATEST_SECONDS
    minute_seconds: float = MINUTE_SECONDS


class AlpacaPriceFeed:
    """Alpaca's prices into `price_bars` on the engine's schedule (see the module's docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        data: AlpacaDataApi,
        trading: AlpacaApi,
        cadence: Cadence = Cadence(),
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.data = data
        self.trading = trading
        self.cadence = cadence
        self._assets: dict[str, bool] = {}  # ticker -> Alpaca trades it
        self._caught_up: set[str] = set()
        self._latest_at: datetime | None = None
        self._minutes_at: datetime | None = None
        self._minutes_through: datetime | None = None
        self._daily_through: datetime | None = None  # the last session close whose bars are in
        self.calendar_checked = False

    # ---- what is watched ------------------------------------------------------------------

    async def symbols(self) -> list[str]:
        """The tickers of `tickers` Alpaca trades (new ones are asked about first)."""
        tickers = [r["ticker"] for r in await self.pool.fetch("SELECT ticker FROM tickers ORDER BY ticker")]
        for ticker in tickers:
            if ticker not in self._assets:
                await self._check_asset(ticker)
        return [t for t in tickers if self._assets.get(t)]

    async def _check_asset(self, ticker: str) -> None:
        try:
            asset = await self.trading.asset(ticker)
        except BrokerRejected as refusal:
            self._assets[ticker] = False
            log.warning(
                "alpaca has no such asset: no prices from alpaca for it", ticker=ticker, reason=refusal.reason
            )
            return
        status = getattr(asset.status, "value", asset.status)
        self._assets[ticker] = bool(asset.tradable) and status == "active"
        if not self._assets[ticker]:
            log.warning(
                "alpaca does not trade this asset: no prices from alpaca for it",
                ticker=ticker,
                status=status,
                tradable=asset.tradable,
            )

    # ---- daily bars -----------------------------------------------------------------------

    async def catch_up_daily(
        self,
        symbols: Sequence[str],
        now: datetime,
        on_bars: Callable[[int], None] | None = None,
        *,
        since: date | None = None,
    ) -> int:
        """Every settled session's daily bar since each ticker's latest stored one, or since
        `since` for all (bars stored already are replaced: a split's adjusted history)."""
        settled = settled_close(now)
        if since is not None:
            return await self._daily(symbols, _midnight(since), settled, on_bars)
        latest = {
            r["ticker"]: r["ts"]
            for r in await self.pool.fetch(
                "SELECT ticker, max(ts) AS ts FROM price_bars WHERE interval = '1d' AND ticker = ANY($1) GROUP BY ticker",
                list(symbols),
            )
        }
        new = [s for s in symbols if s not in latest]
        known = [s for s in symbols if s in latest and latest[s] < settled]
        written = 0
        if new:
            written += await self._daily(
                new, _midnight(now.date() - timedelta(days=BACKFILL_DAYS)), settled, on_bars
            )
        if known:
            since = min(latest[s] for s in known).astimezone(trading_window.NEW_YORK).date()
            written += await self._daily(known, _midnight(since), settled, on_bars)
        return written

    async def _daily(
        self,
        symbols: Sequence[str],
        start: datetime,
        settled: datetime,
        on_bars: Callable[[int], None] | None,
    ) -> int:
        written = 0
        for chunk in _chunks(symbols):
            async for page in self.data.bar_pages(chunk, TimeFrame.Day, start, settled):
                written += await self._store(daily_bar(bar, settled) for bar in page)
                if on_bars is not None:
                    on_bars(len(page))
        return written

    # ---- minute bars ----------------------------------------------------------------------

    async def read_minutes(self, symbols: Sequence[str], since: datetime, now: datetime) -> int:
        written = 0
        for chunk in _chunks(symbols):
            async for page in self.data.bar_pages(chunk, ONE_MINUTE, since, now):
                written += await self._store(minute_bar(bar, now) for bar in page)
        return written

    async def refresh_minutes(self, symbols: Sequence[str], now: datetime) -> int:
        """The session's latest minute bars: from where the last read ended, a few minutes back."""
        since = max(session_open(now), (self._minutes_through or now) - MINUTE_REREAD)
        written = await self.read_minutes(symbols, since, now)
        self._minutes_at = self._minutes_through = now
        return written

    # ---- latest prices --------------------------------------------------------------------

    async def refresh_latest(self, symbols: Sequence[str], now: datetime) -> int:
        written = 0
        for chunk in _chunks(symbols):
            trades, quotes = await self.data.latest_trades(chunk), await self.data.latest_quotes(chunk)
            written += await self._store(last_price_row(s, trades.get(s), quotes.get(s)) for s in chunk)
        self._latest_at = now
        return written

    # ---- the calendar -----------------------------------------------------------------------

    async def check_calendar(self) -> bool:
        """Alpaca's calendar and clock against XNYS (calendar_check.py); False when Alpaca could
        not be asked: the engine trades on XNYS alone meanwhile, and the next round asks again."""
        try:
            await cross_check_calendar(self.trading, self.clock.now())
        except (BrokerRejected, *TRANSIENT_ERRORS) as exc:
            log.error(
                "could not check alpaca's calendar; trading on the exchange calendar (XNYS) alone until it can be",
                error=getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}",
            )
            self.calendar_checked = False
            return False
        self.calendar_checked = True
        return True

    # ---- schedule -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Whatever is due now (the first tick: every ticker's history; the calendar was
        checked by the caller first, before the engine trades)."""
        if not self.calendar_checked:
            await self.check_calendar()
        now = self.clock.now()
        symbols = await self.symbols()
        if self._daily_through is None and not symbols:
            log.warning("no ticker for alpaca's market data to price: add tickers (stonks data ...)")
        new = [s for s in symbols if s not in self._caught_up]
        if new:
            await self.catch_up(new, now)
        if trading_window.is_market_open(now) and _due(self._latest_at, now, self.cadence.latest_seconds):
            await self.refresh_latest(symbols, now)
        if _in_minutes(now) and _due(self._minutes_at, now, self.cadence.minute_seconds):
            await self.refresh_minutes(symbols, now)
        settled = settled_close(now)
        if self._daily_through is not None and self._daily_through < settled:
            await self.after_close(symbols, now)
        self._daily_through = settled

    async def catch_up(self, symbols: Sequence[str], now: datetime) -> None:
        """Tickers seen for the first time: their daily history and the session's minutes."""
        daily = await self.catch_up_daily(symbols, now)
        minutes = await self.read_minutes(symbols, session_open(now), now)
        self._caught_up.update(symbols)
        log.info("alpaca market data caught up", tickers=len(symbols), daily_bars=daily, minute_bars=minutes)

    async def after_close(self, symbols: Sequence[str], now: datetime) -> None:
        """The session's daily bars, the calendar checked again, old `last` rows dropped."""
        await self.check_calendar()
        await self.catch_up_daily(symbols, now)
        await self.pool.execute("DELETE FROM price_bars WHERE interval = 'last' AND ts < $1", now - LAST_KEPT)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: a failed round (Alpaca away after the retries) is logged and the next
        round tries again; nothing here stops the broker or the engine."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - prices must outlive any one failure
                log.warning(
                    "alpaca market data round failed; the next round tries again",
                    error=f"{type(exc).__name__}: {exc}",
                    transient=isinstance(exc, TRANSIENT_ERRORS),
                )
            await pause_unless_stopped(stop, self.cadence.latest_seconds)

    async def _store(self, rows) -> int:
        bars = [row for row in rows if row is not None]
        if not bars:
            return 0
        async with self.pool.acquire() as connection, connection.transaction():
            return await market_store.insert_bars(connection, bars)


def _due(last: datetime | None, now: datetime, seconds: float) -> bool:
    return last is None or (now - last).total_seconds() >= seconds


def _in_minutes(now: datetime) -> bool:
    """While the market is open, and for a few minutes after the close (its last bars)."""
    opens = trading_window.current_session_open(now)
    return opens is not None or now - trading_window.previous_session_close(now) <= MINUTE_GRACE


def session_open(now: datetime) -> datetime:
    """The open of the session in progress, or of the last one."""
    opens = trading_window.current_session_open(now)
    if opens is not None:
        return opens
    close = trading_window.previous_session_close(now)
    return trading_window.session_times(close.astimezone(trading_window.NEW_YORK).date())[0]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, trading_window.NEW_YORK).astimezone(UTC)


def _chunks(symbols: Sequence[str]) -> list[Sequence[str]]:
    return [symbols[i : i + SYMBOLS_PER_REQUEST] for i in range(0, len(symbols), SYMBOLS_PER_REQUEST)]
