"""Replaying a stretch of history through the live stack on a simulated clock: the demo.

The engine, the broker and the Redis queues are the production ones; only the clock is
simulated. The broker is the paper broker, or (`venue`) any other place the order jobs can be
filled: `services/alpaca_broker/local_venue.py` puts the Alpaca adapter and the local Alpaca
server there, its prices following the replayed market. For each XNYS session it steps to
the trading window's opening (decisions, the protective pass), to each half hour a gradual
entry needs, to the window's last minute, and to the close (the session's snapshot, metrics
and risk tier). At each step the stack settles: the market moves (`Venue.market_at`), the
engine decides and sends, the broker fills, the engine applies the fills.

With daily bars, the price the live stack sees during a session is the session's open (the
close is not known before 16:00), so stops are checked against opens, gaps included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis

from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.order_signing import OrderSigner
from services.trading.core.clock import SimulatedClock
from services.trading.core.replay_instants import session_instants, sessions_between
from services.trading.core.trading_window import session_times
from services.trading.live.engine import Notifier, TradingEngine


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    sessions: int
    decisions: int
    acted: int
    trades: int
    stop_exits: int
    take_profit_exits: int
    starting_value: Decimal
    final_value: Decimal
    reserve: Decimal
    realized_pnl: Decimal


class Venue(Protocol):
    """Where the replay's order jobs are filled, driven step by step by the replay."""

    async def start(self) -> None:
        """The broker's account opened with the replay's capital, before the engine starts."""

    async def market_at(self, instant: datetime) -> None:
        """The clock moved to `instant`: the venue's prices follow, and whatever that fills at
        the broker (a resting stop) is reported before the engine ticks."""

    async def settle(self) -> int:
        """Fill every order job waiting and report the outcomes; return how many reports wait
        for the engine (0: nothing to apply)."""

    async def finish(self) -> None:
        """The replay's last step is done."""

    async def close(self) -> None:
        """Release what the venue started."""


VenueFactory = Callable[[asyncpg.Pool, aioredis.Redis, SimulatedClock, OrderSigner, Decimal], Venue]


class PaperVenue:
    """The paper broker: it prices each fill from the bars itself, at the clock's instant."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        clock: SimulatedClock,
        order_signer: OrderSigner,
        capital: Decimal,
    ) -> None:
        self.broker = PaperBroker.on_redis(
            pool, redis, clock, PaperBrokerSettings(starting_cash=capital), order_signer=order_signer
        )

    async def start(self) -> None:
        await self.broker.start()

    async def market_at(self, instant: datetime) -> None:
        pass

    async def settle(self) -> int:
        return await self.broker.drain()

    async def finish(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Replay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        start: date,
        end: date,
        *,
        capital: Decimal,
        notifier: Notifier | None = None,
        venue: VenueFactory = PaperVenue,
    ) -> None:
        self.pool = pool
        self.days = sessions_between(start, end)
        if not self.days:
            raise ValueError(f"no NYSE session between {start} and {end}")
        first_open = session_times(self.days[0])[0]
        self.clock = SimulatedClock(first_open - timedelta(hours=12))
        # Engine and broker live and die together here, in a demo's own Redis database: a key
        # of their own, never kept, is all they need to trust each other's jobs.
        signer = OrderSigner.generate()
        self.venue = venue(pool, redis, self.clock, signer, capital)
        self.engine = TradingEngine(pool, redis, self.clock, order_signer=signer, notifier=notifier)
        self.capital = capital

    async def run(self, progress: Callable[[date], None] | None = None) -> ReplaySummary:
        await self.venue.start()
        await self.engine.start()
        await self.engine.store.update_config({"enabled": True, "paused": False}, source="demo replay")
        try:
            for day in self.days:
                for instant in session_instants(day):
                    await self.step(instant)
                if progress:
                    progress(day)
            await self.venue.finish()
        finally:
            await self.engine.stop()
        return await self.summary()

    async def step(self, instant: datetime) -> None:
        self.clock.set(instant)
        await self.venue.market_at(instant)
        await self.engine.tick()
        if await self.venue.settle():
            await self.engine.tick()

    async def close(self) -> None:
        await self.venue.close()

    async def summary(self) -> ReplaySummary:
        row = await self.pool.fetchrow(_SUMMARY)
        held = await self.engine.store.held()
        quotes = await self.engine.market.prices.quotes(held.tickers, self.clock.now())
        holdings = held.holdings(held.positions(quotes))
        return ReplaySummary(
            sessions=len(self.days),
            decisions=row["decisions"],
            acted=row["acted"],
            trades=row["trades"],
            stop_exits=row["stop_exits"],
            take_profit_exits=row["take_profit_exits"],
            starting_value=self.capital,
            final_value=holdings.total_value,
            reserve=holdings.reserve_pool,
            realized_pnl=row["realized_pnl"],
        )


_SUMMARY = """
SELECT (SELECT count(*) FROM trading_decisions WHERE recommendation_id IS NOT NULL) AS decisions,
       (SELECT count(*) FROM trading_decisions WHERE recommendation_id IS NOT NULL AND decision = 'act') AS acted,
       (SELECT count(*) FROM closed_trades) AS trades,
       (SELECT count(*) FROM closed_trades WHERE exit_reason IN ('stop_loss', 'trailing_stop')) AS stop_exits,
       (SELECT count(*) FROM closed_trades WHERE exit_reason = 'take_profit') AS take_profit_exits,
       (SELECT coalesce(sum(pnl), 0) FROM closed_trades) AS realized_pnl
"""
