"""Replaying a stretch of history through the live stack on a simulated clock: the demo.

The engine, the paper broker and the Redis queues are the production ones; only the clock
is simulated. For each XNYS session it steps to the trading window's opening (decisions,
the protective pass), to each half hour a gradual entry needs, to the window's last minute,
and to the close (the session's snapshot, metrics and risk tier). At each step the stack
settles: the engine decides and sends, the broker fills, the engine applies the fills.

With daily bars, the price the live stack sees during a session is the session's open (the
close is not known before 16:00), so stops are checked against opens, gaps included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

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
        self.broker = PaperBroker.on_redis(
            pool, redis, self.clock, PaperBrokerSettings(starting_cash=capital), order_signer=signer
        )
        self.engine = TradingEngine(pool, redis, self.clock, order_signer=signer, notifier=notifier)
        self.capital = capital

    async def run(self, progress: Callable[[date], None] | None = None) -> ReplaySummary:
        await self.broker.start()
        await self.engine.start()
        await self.engine.store.update_config({"enabled": True, "paused": False}, source="demo replay")
        try:
            for day in self.days:
                for instant in session_instants(day):
                    await self.step(instant)
                if progress:
                    progress(day)
        finally:
            await self.engine.stop()
        return await self.summary()

    async def step(self, instant: datetime) -> None:
        self.clock.set(instant)
        await self.engine.tick()
        if await self.broker.drain():
            await self.engine.tick()

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
