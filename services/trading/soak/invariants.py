"""What must hold of an account at rest, whatever happened to it: each invariant is a
statement over the database (and the Redis queues), written here independently of the
engine's code, which it judges. The soak checks them after every run; each names what it
checked and shows the rows that break it.

"At rest" means the upstream writer stopped, the faults ended, the stack settled and the
engine process stopped: nothing is in flight any more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS, processing_queue
from services.shared.reliable_queue import DEAD_LETTER_SUFFIX

SHOWN = 8  # violations quoted per invariant; the count says how many there are
BPS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class AtRest:
    """What the checks need besides the database: the paper account's starting cash, the
    slippage the broker may add to a market price, the Redis queues, and the instant of rest."""

    starting_cash: Decimal
    slippage_bps: Decimal
    redis: aioredis.Redis
    now: datetime


@dataclass(frozen=True, slots=True)
class InvariantResult:
    name: str
    statement: str
    checked: int
    violation_count: int
    violations: tuple[str, ...] = ()
    summary: str = ""

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def describe(self) -> str:
        head = (
            f"{self.name}: {'holds' if self.passed else f'{self.violation_count} violation(s)'}"
            f" over {self.checked} checked"
        )
        lines = [head, f"  {self.statement}"]
        if self.summary:
            lines.append(f"  {self.summary}")
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


def _result(
    name: str, statement: str, checked: int, violations: list[str], summary: str = ""
) -> InvariantResult:
    return InvariantResult(name, statement, checked, len(violations), tuple(violations[:SHOWN]), summary)


def _short(ticker: str) -> str:
    return ticker if len(ticker) <= 20 else f"{ticker[:12]}...({len(ticker)} chars)"


async def decided_at_most_once(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    rows = await db.fetch("""SELECT recommendation_id, count(*) AS n FROM trading_decisions
                             WHERE recommendation_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1""")
    checked = await db.fetchval(
        "SELECT count(DISTINCT recommendation_id) FROM trading_decisions WHERE recommendation_id IS NOT NULL"
    )
    return _result(
        "decided at most once",
        "no recommendation has more than one trading decision",
        checked,
        [f"recommendation {r['recommendation_id']} has {r['n']} decisions" for r in rows],
    )


async def every_recommendation_decided(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    rows = await db.fetch("""
        SELECT r.id, r.ticker, r.action, r.confidence, r.thesis FROM recommendations r
        WHERE r.action <> 'hold' AND r.mode <> 'research'
          AND r.generated_at >= coalesce((SELECT epoch FROM engine_state WHERE id = 1), '-infinity')
          AND NOT EXISTS (SELECT 1 FROM trading_decisions d WHERE d.recommendation_id = r.id)
        ORDER BY r.id""")
    checked = await db.fetchval("""SELECT count(*) FROM recommendations WHERE action <> 'hold' AND mode <> 'research'
        AND generated_at >= coalesce((SELECT epoch FROM engine_state WHERE id = 1), '-infinity')""")
    kinds = Counter(r["thesis"] for r in rows)
    summary = (
        "undecided by upstream kind: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) if rows else ""
    )
    return _result(
        "every recommendation decided",
        "every recommendation for the engine (not hold, not research) generated since it first started "
        "has a decision (act, or skip with a reason)",
        checked,
        [
            f"recommendation {r['id']} ({r['thesis']}: {r['action']} {_short(r['ticker'])}, "
            f"confidence {r['confidence']}) has no decision"
            for r in rows
        ],
        summary,
    )


async def no_order_sent_twice(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    violations = [
        f"client order {r['client_order_id']} is {r['n']} broker orders"
        for r in await db.fetch(
            "SELECT client_order_id, count(*) AS n FROM broker_orders GROUP BY 1 HAVING count(*) > 1"
        )
    ]
    violations += [
        f"broker order {r['id']} ({r['side']} {r['quantity']} {r['ticker']}, {r['client_order_id']}) "
        f"matches no job the engine wrote"
        for r in await db.fetch(
            """SELECT b.* FROM broker_orders b WHERE NOT EXISTS
           (SELECT 1 FROM order_outbox o WHERE o.client_order_id = b.client_order_id)"""
        )
    ]
    violations += [
        f"broker order {r['order_id']} filled {r['n']} times"
        for r in await db.fetch(
            "SELECT order_id, count(*) AS n FROM broker_fills GROUP BY 1 HAVING count(*) > 1"
        )
    ]
    checked = await db.fetchval("SELECT count(*) FROM broker_orders")
    return _result(
        "no order sent twice",
        "each outbox job is at most one broker order (client_order_id unique), each broker order comes "
        "from an outbox job and is filled at most once",
        checked,
        violations,
    )


async def every_order_accounted_for(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    violations = [
        f"job {r['client_order_id']} ({r['side']} {r['quantity']} {r['ticker']}) was delivered but "
        f"never reached the broker"
        for r in await db.fetch(
            """SELECT o.* FROM order_outbox o WHERE o.delivered_at IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM broker_orders b WHERE b.client_order_id = o.client_order_id)"""
        )
    ]
    violations += [
        f"job {r['client_order_id']} ({r['side']} {r['quantity']} {r['ticker']}) was due at "
        f"{r['not_before']:%H:%M:%S} and is still unsent"
        for r in await db.fetch(
            """SELECT * FROM order_outbox WHERE delivered_at IS NULL AND cancelled_at IS NULL AND not_before <= $1""",
            rest.now,
        )
    ]
    violations += [
        f"broker order {r['client_order_id']} ({r['status']} {r['side']} {r['quantity']} {r['ticker']}) "
        f"was never applied by the engine"
        for r in await db.fetch(
            """SELECT b.* FROM broker_orders b WHERE NOT EXISTS
           (SELECT 1 FROM applied_fills a WHERE a.client_order_id = b.client_order_id)"""
        )
    ]
    violations += [
        f"broker order {r['client_order_id']} is {r['status']} ({r['quantity']} at {r['price']}) but "
        f"was applied as {r['applied_status']} ({r['applied_quantity']} at {r['applied_price']})"
        for r in await db.fetch(
            """SELECT b.client_order_id, b.status, coalesce(f.quantity, b.quantity) AS quantity, f.price,
                  a.status AS applied_status, a.quantity AS applied_quantity, a.price AS applied_price
           FROM broker_orders b JOIN applied_fills a ON a.client_order_id = b.client_order_id
           LEFT JOIN broker_fills f ON f.order_id = b.id
           WHERE a.status <> b.status OR a.quantity <> coalesce(f.quantity, b.quantity)
              OR a.price IS DISTINCT FROM f.price"""
        )
    ]
    violations += [
        f"job {r['client_order_id']} was cancelled ({r['cancel_reason']}) yet the broker filled it"
        for r in await db.fetch(
            """SELECT o.* FROM order_outbox o JOIN broker_orders b ON b.client_order_id = o.client_order_id
           WHERE o.cancelled_at IS NOT NULL AND b.status = 'filled'"""
        )
    ]
    checked = await db.fetchval("SELECT count(*) FROM order_outbox")
    return _result(
        "every order accounted for",
        "at rest, every due job was delivered, every delivered job reached the broker, and every broker "
        "outcome was applied once, as the broker recorded it; no cancelled job was filled",
        checked,
        violations,
    )


async def holdings_agree(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    rows = await db.fetch("""
        WITH broker AS (SELECT ticker, sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS q
                        FROM broker_fills GROUP BY ticker),
             applied AS (SELECT ticker, sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS q
                         FROM applied_fills WHERE status = 'filled' GROUP BY ticker),
             lots AS (SELECT ticker, sum(remaining_quantity) AS q FROM tax_lots WHERE status = 'open' GROUP BY ticker)
        SELECT ticker, coalesce(b.q, 0) AS broker, coalesce(a.q, 0) AS applied, coalesce(l.q, 0) AS lots
        FROM broker b FULL JOIN applied a USING (ticker) FULL JOIN lots l USING (ticker) ORDER BY ticker""")
    violations = [
        f"{_short(r['ticker'])}: broker holds {r['broker']}, applied fills add up to {r['applied']}, "
        f"open tax lots hold {r['lots']}"
        for r in rows
        if not r["broker"] == r["applied"] == r["lots"]
    ]
    return _result(
        "holdings agree",
        "per ticker, shares held by the broker's fills = shares of the applied fills = remaining shares "
        "of the open tax lots",
        len(rows),
        violations,
    )


# A price row is within its days' daily range, widened by the broker's slippage (and one
# price step, the broker's rounding). $1 is the slippage as a fraction.
_OUT_OF_RANGE = """
SELECT p.*, r.low, r.high FROM priced p
CROSS JOIN LATERAL (
    SELECT min(b.low) AS low, max(b.high) AS high FROM price_bars b
    WHERE b.ticker = p.ticker AND b.interval = '1d'
      AND b.ts >= (p.first_day::timestamp AT TIME ZONE 'America/New_York')
      AND b.ts < ((p.last_day + 1)::timestamp AT TIME ZONE 'America/New_York')) r
WHERE r.low IS NULL OR p.price < r.low * (1 - $1::numeric) - 0.0001 OR p.price > r.high * (1 + $1::numeric) + 0.0001
ORDER BY p.first_day, p.label
"""
_NY_DAY = "(({0}) AT TIME ZONE 'America/New_York')::date"


def _out_of_range_text(r: asyncpg.Record) -> str:
    where = "no daily bar that day" if r["low"] is None else f"the day traded {r['low']}..{r['high']}"
    days = str(r["first_day"]) if r["first_day"] == r["last_day"] else f"{r['first_day']}..{r['last_day']}"
    return f"{r['label']}: {_short(r['ticker'])} at {r['price']} on {days}, but {where}"


async def _priced_out_of_range(db: asyncpg.Connection, rest: AtRest, priced: str) -> tuple[int, list[str]]:
    slippage = rest.slippage_bps * BPS
    checked = await db.fetchval(f"WITH priced AS ({priced}) SELECT count(*) FROM priced")
    rows = await db.fetch(f"WITH priced AS ({priced}) {_OUT_OF_RANGE}", slippage)
    return checked, [_out_of_range_text(r) for r in rows]


_FILLS = f"""SELECT 'fill ' || id || ' (' || side || ')' AS label, ticker, price,
    {_NY_DAY.format("filled_at")} AS first_day, {_NY_DAY.format("filled_at")} AS last_day FROM broker_fills"""
_POSITION_ENTRIES = f"""SELECT 'position ' || id || ' entry' AS label, ticker, entry_price AS price,
    {_NY_DAY.format("created_at")} AS first_day, {_NY_DAY.format("updated_at")} AS last_day
    FROM position_stop_levels"""
_TRADE_ENTRIES = f"""SELECT 'closed trade ' || id || ' entry' AS label, ticker, entry_price AS price,
    {_NY_DAY.format("entry_at")} AS first_day, {_NY_DAY.format("exit_at")} AS last_day FROM closed_trades"""
# A lot's per-share basis is its purchase price plus the price part of any washed loss it
# absorbed (per share: the disallowed loss less the part carried in its fees, over the shares
# that absorbed it); the purchase price is what must be in range.
_LOT_BASES = """SELECT 'tax lot ' || id || ' basis' AS label, ticker,
    round(cost_basis_per_share - coalesce(((basis_adjustment ->> 'disallowed_loss')::numeric
                                           - coalesce((basis_adjustment ->> 'disallowed_fees')::numeric, 0))
                                          / nullif((basis_adjustment ->> 'quantity')::numeric, 0), 0), 6) AS price,
    acquisition_date AS first_day, acquisition_date AS last_day FROM tax_lots"""


async def fills_priced_in_range(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    checked, violations = await _priced_out_of_range(db, rest, _FILLS)
    return _result(
        "fills priced in the day's range",
        f"every broker fill's price lies within its fill day's daily bar [low, high], give or take "
        f"{rest.slippage_bps} bps of slippage",
        checked,
        violations,
    )


async def entry_prices_in_range(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    checked, violations = 0, []
    for priced in (_POSITION_ENTRIES, _TRADE_ENTRIES, _LOT_BASES):
        count, found = await _priced_out_of_range(db, rest, priced)
        checked, violations = checked + count, violations + found
    return _result(
        "entry prices in the day's range",
        f"every position's entry price, closed trade's entry price and tax lot's purchase basis lies "
        f"within the daily bars' [low, high] of the days it was bought on, give or take "
        f"{rest.slippage_bps} bps",
        checked,
        violations,
    )


async def reserve_chain_unbroken(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    rows = await db.fetch("""SELECT id, amount, balance_after, trigger_type,
                                    lag(balance_after) OVER (ORDER BY id) AS previous
                             FROM reserve_pool_ledger ORDER BY id""")
    violations = []
    for r in rows:
        before = r["previous"] if r["previous"] is not None else Decimal(0)
        if r["balance_after"] != before + r["amount"]:
            violations.append(
                f"ledger entry {r['id']} ({r['trigger_type']}): {before} + {r['amount']} "
                f"recorded as {r['balance_after']}"
            )
        if r["balance_after"] < 0:
            violations.append(f"ledger entry {r['id']} leaves the Reserve Pool at {r['balance_after']}")
    return _result(
        "reserve ledger chain unbroken",
        "each Reserve Pool ledger entry's balance_after = the previous entry's + its amount (from 0), "
        "never negative",
        len(rows),
        violations,
    )


async def cash_reconciles(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    row = await db.fetchrow("""
        SELECT (SELECT cash FROM broker_account WHERE id = 1) AS cash, count(*) AS fills,
               coalesce(sum(CASE side WHEN 'buy' THEN -(round(price * quantity, 2) + fee)
                                      ELSE round(price * quantity, 2) - fee END), 0) AS flow
        FROM broker_fills""")
    expected = rest.starting_cash + row["flow"]
    violations = (
        []
        if row["cash"] == expected
        else [
            (
                f"the account holds {row['cash']}, the fills say {expected} ({rest.starting_cash} {row['flow']:+}): "
                f"off by {row['cash'] - expected:+}"
            )
        ]
    )
    return _result(
        "cash reconciles",
        "account cash = starting cash - each buy's price x quantity (in cents) + fee + each sell's "
        "price x quantity (in cents) - fee, to the cent",
        row["fills"],
        violations,
    )


async def queues_at_rest(db: asyncpg.Connection, rest: AtRest) -> InvariantResult:
    violations, checked = [], 0
    for queue in (QUEUE_BROKER_ORDERS, QUEUE_BROKER_FILLS):
        for key in (queue, processing_queue(queue), f"{queue}{DEAD_LETTER_SUFFIX}"):
            checked += 1
            depth = await rest.redis.llen(key)
            if depth:
                quoted = [m.decode(errors="replace")[:160] for m in await rest.redis.lrange(key, 0, 1)]
                violations.append(f"{key} holds {depth} message(s), e.g. {quoted}")
    return _result(
        "queues empty at rest",
        "at rest no order job or broker report waits in a queue, a processing list or a dead-letter queue",
        checked,
        violations,
    )


Invariant = Callable[[asyncpg.Connection, AtRest], Awaitable[InvariantResult]]
INVARIANTS: tuple[Invariant, ...] = (
    decided_at_most_once,
    every_recommendation_decided,
    no_order_sent_twice,
    every_order_accounted_for,
    holdings_agree,
    fills_priced_in_range,
    entry_prices_in_range,
    reserve_chain_unbroken,
    cash_reconciles,
    queues_at_rest,
)


async def check_all(db: asyncpg.Connection, rest: AtRest) -> list[InvariantResult]:
    return [await invariant(db, rest) for invariant in INVARIANTS]
