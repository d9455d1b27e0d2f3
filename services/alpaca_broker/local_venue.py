"""The demo's replay through the Alpaca adapter: the local Alpaca server as the exchange.

`./stonks demo --broker alpaca-local` replays the sample market through the live engine as
always, but its order jobs go to the real Alpaca adapter (`broker.py`, on alpaca-py), wired
exactly as `stonks run` wires it with `STONKS_BROKER=alpaca` and `STONKS_ALPACA_URL` pointing
at the local Alpaca server (`fake_server.py`). The server's prices follow the replay: at each
step, each ticker's price is the one the engine sees (`PriceBook`, the session's open while it
is open), so market orders fill where the paper broker would fill them (without its slippage)
and the stops resting at the server trigger on the same opens the engine's own checks read.

The adapter's background loops (stream catch-up, the resting-stop sync, reconciliation) run
on timers in `stonks run`; here each is driven at its step, so the replay is repeatable and
never waits on a timer:

- **as the clock moves** (`market_at`): at a new week's first step the account is reconciled
  first (weekly, not every five minutes: each run costs four of the account's 200 requests a
  minute, which the adapter's limiter would make the replay wait for); the resting stops are
  brought in line with the engine's books (its stop levels, trailed or not, and the shares its
  fills add up to), then the prices move, which may fill a stop at the server; every event the
  server sent is applied before the engine's tick;
- **after the engine's tick** (`settle`): every order job is submitted and every outcome
  reported, so the engine's next tick applies them;
- **at the end** (`finish`): stops in line once more, and a last reconciliation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis
import structlog
from alpaca.trading.models import TradeUpdate
from pydantic import SecretStr

from services.alpaca_broker import connection as alpaca_connection
from services.alpaca_broker.broker import AlpacaBroker
from services.alpaca_broker.fake_server import FakeAlpaca
from services.shared.config import AppConfig, BrokerName
from services.shared.order_signing import OrderSigner
from services.shared.redis_keys import QUEUE_BROKER_FILLS
from services.shared.schemas import TradingMode
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import NEW_YORK, is_market_open
from services.trading.market.price_book import PriceBook

log = structlog.get_logger(__name__)
KEY, SECRET = "local-alpaca-demo-key", "local-alpaca-demo-secret"
# A step's events arrive within milliseconds, unless the adapter's calls wait for the
# account's request budget (the rate limiter holds a call up to its 60 s window).
SETTLE_SECONDS = 75.0
POLL_SECONDS = 0.002


def settings_for(fake: FakeAlpaca) -> AppConfig:
    """The settings an owner would give `stonks run` to trade at this (started) server:
    `STONKS_BROKER=alpaca`, its keys, `STONKS_ALPACA_URL` and `STONKS_ALPACA_STREAM_URL`."""
    return AppConfig.model_construct(
        broker=BrokerName.ALPACA,
        trading_mode=TradingMode.PAPER,
        alpaca_api_key=SecretStr(fake.api_key),
        alpaca_secret_key=SecretStr(fake.secret_key),
        alpaca_url=fake.base_url,
        alpaca_stream_url=fake.stream_url,
    )


@dataclass(frozen=True, slots=True)
class HeldAtBroker:
    ticker: str
    at_broker: Decimal  # shares the local Alpaca holds
    in_books: Decimal  # shares in the engine's open tax lots
    stop_quantity: Decimal  # shares covered by the stop resting at the broker (0: none)
    stop_price: Decimal | None


@dataclass(frozen=True, slots=True)
class LocalAlpacaReport:
    """The session as the local Alpaca saw it, beside the engine's books."""

    market_orders: int
    market_filled: int
    market_rejected: int  # refused or ended unfilled at the broker
    stops_placed: int  # stop orders placed, replacements included
    stops_filled: int  # resting stops that sold at the broker
    positions: tuple[HeldAtBroker, ...]
    broker_cash: Decimal
    books_cash: Decimal  # the capital moved by every fill the engine applied
    reconciliations: int
    reconciliations_agreed: int
    requests: int  # REST requests the local Alpaca answered
    throttled: int  # of which refused by its 200-a-minute limit

    @property
    def books_agree(self) -> bool:
        return self.broker_cash == self.books_cash and all(p.at_broker == p.in_books for p in self.positions)

    @property
    def unprotected(self) -> tuple[str, ...]:
        """Held tickers with a whole share and no stop resting at the broker for all of them."""
        return tuple(
            p.ticker for p in self.positions if int(p.in_books) >= 1 and p.stop_quantity != int(p.in_books)
        )


class LocalAlpacaVenue:
    """A `replay.Venue`: the Alpaca adapter and the local Alpaca server, driven step by step."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        clock: SimulatedClock,
        order_signer: OrderSigner,
        capital: Decimal,
    ) -> None:
        self.pool, self.redis, self.clock = pool, redis, clock
        self.order_signer = order_signer
        self.capital = capital
        # On the replay's clock: orders, fills and events carry the simulated instants.
        self.fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, cash=capital, now=clock.now)
        self.prices = PriceBook(pool)
        self.broker: AlpacaBroker | None = None
        self.tickers: list[str] = []
        self._stream_task: asyncio.Task | None = None
        self._events_applied = 0
        self._week: tuple[int, int] | None = None

    # -- replay.Venue ------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.fake.start)
        config = settings_for(self.fake)
        api = alpaca_connection.open_api(config)
        await alpaca_connection.announce(api, TradingMode.PAPER)
        self.broker = alpaca_connection.open_broker(
            config, self.pool, self.redis, self.clock, order_signer=self.order_signer, api=api
        )
        # Counted once applied, so a step can wait until the broker has seen all it was sent.
        self.broker.stream.subscribe_trade_updates(self._on_trade_update)
        self.tickers = [
            r["ticker"] for r in await self.pool.fetch("SELECT ticker FROM tickers ORDER BY ticker")
        ]
        await self.broker.start()
        self._stream_task = asyncio.create_task(self.broker.stream.run())
        await asyncio.wait_for(self.broker.stream.connected.wait(), 10)
        await self.reconcile("start")

    async def market_at(self, instant: datetime) -> None:
        week = instant.astimezone(NEW_YORK).date().isocalendar()[:2]
        if self._week is not None and week != self._week:
            await self.reconcile("interval")  # the books the last week left
        self._week = week
        await self._sync_stops()
        if is_market_open(instant):
            for ticker, quote in (await self.prices.quotes(self.tickers, instant)).items():
                self.fake.set_price(ticker, quote.price)  # may fill a resting stop
            await self._settled()

    async def settle(self) -> int:
        await self.broker.drain()
        await self._settled()
        return await self.redis.llen(QUEUE_BROKER_FILLS)

    async def finish(self) -> None:
        await self._sync_stops()
        await self.reconcile("interval")

    async def close(self) -> None:
        if self._stream_task is not None:
            await self.broker.stream.stop_ws()
            self._stream_task.cancel()
            await asyncio.gather(self._stream_task, return_exceptions=True)
        await asyncio.to_thread(self.fake.stop)

    # -- the adapter's loops, one step at a time ------------------------------------------

    async def reconcile(self, trigger: str) -> None:
        await self.broker.reconciler.run_once(trigger)
        await self._settled()

    async def _sync_stops(self) -> None:
        await self.broker.stops.sync()
        await self._settled()

    async def _on_trade_update(self, update: TradeUpdate) -> None:
        await self.broker.on_trade_update(update)
        self._events_applied += 1

    async def _settled(self) -> None:
        """Wait until every order of ours has its outcome reported and every event the server
        sent is applied. Past `SETTLE_SECONDS` (an event lost), catch up as after a reconnection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        while self.broker.in_flight or self._events_applied < len(self.fake.events):
            if loop.time() > deadline:
                log.warning(
                    "the local Alpaca's events were not all applied in time; catching up",
                    in_flight=self.broker.in_flight,
                    missing=len(self.fake.events) - self._events_applied,
                )
                await self.broker.catch_up()
                self._events_applied = max(self._events_applied, len(self.fake.events))
                return
            await asyncio.sleep(POLL_SECONDS)

    # -- the summary -------------------------------------------------------------------------

    async def report(self) -> LocalAlpacaReport:
        books = {r["ticker"]: r["quantity"] for r in await self.pool.fetch(_BOOKS_POSITIONS)}
        books_cash = self.capital + await self.pool.fetchval(_BOOKS_CASH_MOVED)
        runs = await self.pool.fetchrow(
            "SELECT count(*) AS runs, count(*) FILTER (WHERE status = 'agreed') AS agreed FROM reconciliation_runs"
        )
        with self.fake.lock:
            orders = list(self.fake.orders.values())
            held = {symbol: position.qty for symbol, position in self.fake.positions.items()}
            cash = self.fake.cash
            requests, throttled = len(self.fake.requests), self.fake.rate_limited
        market = [o for o in orders if o.type == "market"]
        stops = [o for o in orders if o.type == "stop"]
        resting = {o.symbol: o for o in stops if o.open}
        positions = tuple(
            HeldAtBroker(
                ticker,
                held.get(ticker, Decimal(0)),
                books.get(ticker, Decimal(0)),
                resting[ticker].qty if ticker in resting else Decimal(0),
                resting[ticker].stop_price if ticker in resting else None,
            )
            for ticker in sorted({*held, *books})
        )
        return LocalAlpacaReport(
            market_orders=len(market),
            market_filled=sum(o.status == "filled" for o in market),
            market_rejected=await self.pool.fetchval(
                "SELECT count(*) FROM broker_orders WHERE order_type = 'market' AND status = 'rejected'"
            ),
            stops_placed=len(stops),
            stops_filled=sum(o.status == "filled" for o in stops),
            positions=positions,
            broker_cash=cash,
            books_cash=books_cash,
            reconciliations=runs["runs"],
            reconciliations_agreed=runs["agreed"],
            requests=requests,
            throttled=throttled,
        )


# The engine's own books: the shares of its open tax lots, and the cash its applied fills moved.
_BOOKS_POSITIONS = """
SELECT ticker, sum(remaining_quantity) AS quantity FROM tax_lots
WHERE status = 'open' AND remaining_quantity > 0 GROUP BY ticker
"""
_BOOKS_CASH_MOVED = """
SELECT coalesce(sum(CASE side WHEN 'sell' THEN quantity * price - fee ELSE -(quantity * price) - fee END), 0)
FROM applied_fills WHERE status = 'filled'
"""
