"""The engine's PostgreSQL adapter for state: configuration, portfolio, breakers, Reserve Pool,
recommendations waiting for a decision, and the engine's own bookkeeping row.

Everything the engine knows is rebuilt from here on every start (seed task 13.1, requirement
18.5): nothing lives only in memory or only in Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from services.shared.config import TradingConfig
from services.shared.schemas import RISK_TIER_ORDER, RiskTierName
from services.trading.core.circuit_breaker import BreakerResolution, CircuitBreakerEvent
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import (
    ZERO,
    CircuitBreakerState,
    HeldPosition,
    OpenPosition,
    PortfolioState,
    Recommendation,
    StopLevels,
)
from services.trading.core.quote import Quote
from services.trading.core.risk_tier_controller import RiskTierChange, TierMemory
from services.trading.core.unfilled_orders import UnfilledOrder, with_unfilled
from services.trading.live.outbox import stored_plan
from services.trading.notifications.settings import (
    NotificationSettings,
    SettingsChange,
    save_notification_settings,
)

log = structlog.get_logger(__name__)

# Environment settings that are also columns of trading_engine_config (same names).
ENV_COLUMNS = (
    "enabled",
    "risk_tier",
    "reserve_siphon_pct",
    "polling_interval_seconds",
    "stop_loss_check_interval_seconds",
    "fast_stop_loss_interval_seconds",
    "gradual_entry_tranches",
    "gradual_entry_interval_minutes",
    "gradual_entry_threshold_dollars",
    "absolute_position_cap",
    "active_pool_minimum",
    "emergency_drawdown_threshold_pct",
    "reserve_high_water_pct",
    "max_open_positions",
    "fractional_shares",
    "micro_trading_enabled",
    "micro_trading_interval_seconds",
    "micro_trading_allocation_cap_pct",
    "micro_trading_max_daily",
    "micro_trading_max_hold_minutes",
    "risk_tier_rule",
    "risk_tier_min_trades",
    "risk_tier_min_sessions",
    "risk_tier_recovery_sessions",
)
AUDIT_EXCLUDED = ("created_at", "updated_at", "id")


_MANUAL_IN_FORCE = "SELECT EXISTS (SELECT 1 FROM circuit_breaker_events WHERE resolved_at IS NULL AND trigger_type = 'manual')"


@dataclass(frozen=True, slots=True)
class Held:
    """The account as read in one snapshot (`EngineStore.held`): the held positions with the
    engine's stop levels, cash, the Reserve Pool, and the orders decided but not yet filled.
    One snapshot matters: a sale the broker fills between two separate reads would count
    neither as held nor as pending, and a sell sized from that would sell shares twice."""

    rows: tuple[asyncpg.Record, ...]
    cash: Decimal = ZERO
    reserve: Decimal = ZERO
    pending: tuple[asyncpg.Record, ...] = ()

    @property
    def tickers(self) -> list[str]:
        return [r["ticker"] for r in self.rows]

    @property
    def priced_tickers(self) -> list[str]:
        """The tickers `portfolio` needs a price for: held ones and those with an unfilled
        order (an unpriced buy could not be counted as spent cash)."""
        return list(dict.fromkeys([*self.tickers, *(o["ticker"] for o in self.pending)]))

    def positions(self, quotes: Mapping[str, Quote]) -> list[HeldPosition]:
        """Each position with the engine's stop levels, at the latest price (a position
        without a quote is valued at its entry price)."""
        positions = []
        for r in self.rows:
            quote = quotes.get(r["ticker"])
            entry = r["entry_price"] or r["avg_cost"] or (quote.price if quote else None)
            if entry is None:
                log.error(
                    "held position has no entry price and no market price; left out of the portfolio",
                    ticker=r["ticker"],
                    quantity=str(r["quantity"]),
                )
                continue
            levels = None
            if r["stop_loss_price"] is not None:
                levels = StopLevels(
                    r["stop_loss_price"],
                    r["take_profit_price"],
                    r["trailing_stop_active"],
                    r["atr_value"],
                    r["atr_multiplier"],
                    r["reward_risk_ratio"],
                    r["updated_at"],
                )
            position = OpenPosition(
                ticker=r["ticker"],
                quantity=r["quantity"],
                entry_price=entry,
                current_price=quote.price if quote else entry,
                sector=r["sector"] or "Unknown",
                stop_loss_price=levels.stop_loss_price if levels else entry,
                take_profit_price=levels.take_profit_price if levels else entry,
                signal_confidence=r["signal_confidence"]
                if r["signal_confidence"] is not None
                else Decimal(0),
                is_micro_trade=bool(r["is_micro_trade"]),
                opened_at=r["opened_at"],
            )
            positions.append(HeldPosition(position, levels))
        return positions

    def without_unsent(self, decision_id: Any) -> Held:
        """This snapshot less the decision's jobs not yet delivered (a later tranche being
        re-checked, and the tranches after it); its delivered ones still count as pending."""
        pending = tuple(
            o
            for o in self.pending
            if o["trading_decision_id"] != decision_id or o["delivered_at"] is not None
        )
        return replace(self, pending=pending)

    def holdings(self, held: Sequence[HeldPosition]) -> PortfolioState:
        """The account as it stands: the held positions (`positions`), cash and reserve."""
        return PortfolioState(tuple(h.position for h in held), self.cash, self.reserve)

    def portfolio(
        self, held: Sequence[HeldPosition], quotes: Mapping[str, Quote], *, pending_buys: bool = True
    ) -> PortfolioState:
        """The account as decisions must see it (`unfilled_orders.with_unfilled`): the held
        positions plus the orders decided but not yet filled, priced at `quotes`."""
        orders = [
            UnfilledOrder(
                o["ticker"], o["side"], o["quantity"], o["sector"] or "Unknown", stored_plan(o["stop_plan"])
            )
            for o in self.pending
        ]
        prices = {t: q.price for t, q in quotes.items()}
        return with_unfilled(
            [h.position for h in held], self.cash, self.reserve, orders, prices, pending_buys=pending_buys
        )


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in row.items() if k not in AUDIT_EXCLUDED}, default=_plain))


def _plain(value: Any) -> str:
    """A value as audit text. A numeric column keeps the scale it was sent with (0.50 stays
    0.50), so a decimal is written in its shortest form: two texts differ only when the values
    do, and re-sending the current 0.5 as 0.50 is no change to audit."""
    if isinstance(value, Decimal) and value.is_finite():
        return format(value.normalize(), "f")
    return str(value)


class ConfigRefused(Exception):
    """The database refused a configuration change whole: the fields its rule names, and why."""

    def __init__(self, fields: tuple[str, ...], reason: str, *, echo: bool = False) -> None:
        super().__init__(reason)
        self.fields, self.reason, self.echo = fields, reason, echo


class EngineStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- configuration ------------------------------------------------------------------

    async def config_row(self, connection: asyncpg.Connection | None = None) -> asyncpg.Record:
        return await (connection or self.pool).fetchrow("SELECT * FROM trading_engine_config WHERE id = 1")

    async def load_settings(self) -> EngineSettings:
        return EngineSettings.from_row(await self.config_row())

    async def update_config(
        self,
        changes: Mapping[str, Any],
        source: str,
        *,
        connection: asyncpg.Connection | None = None,
        tier_change: RiskTierChange | None = None,
    ) -> tuple[dict, dict]:
        """Apply `changes` (column -> value) all or nothing, with an audit record of the
        previous and new configuration and where the change came from (seed task 20.2). A
        tier change also goes to `risk_tier_history`: the controller's with its metrics
        (`tier_change`), the owner's with the source. On `connection`, inside its transaction."""
        if connection is None:
            async with self.pool.acquire() as connection:
                return await self.update_config(
                    changes, source, connection=connection, tier_change=tier_change
                )
        async with connection.transaction():
            previous = await connection.fetchrow(
                "SELECT * FROM trading_engine_config WHERE id = 1 FOR UPDATE"
            )
            if changes:
                columns = list(changes)
                assignments = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(columns))
                await connection.execute(
                    f"UPDATE trading_engine_config SET {assignments}, updated_at = now() WHERE id = 1",
                    *(changes[c] for c in columns),
                )
            new = await self.config_row(connection)
            before, after = _jsonable(previous), _jsonable(new)
            if before != after:
                await connection.execute(
                    "INSERT INTO trading_config_audit (previous_config, new_config, change_source) VALUES ($1, $2, $3)",
                    before,
                    after,
                    source,
                )
            if tier_change is not None:
                await self.record_tier_verdict(tier_change, connection)
            elif previous["risk_tier"] != new["risk_tier"]:
                await connection.execute(
                    _INSERT_TIER_HISTORY,
                    previous["risk_tier"],
                    new["risk_tier"],
                    source,
                    {},
                    None,
                    "changed",
                    f"set by the owner ({source})",
                )
        return before, after

    async def record_tier_verdict(
        self, verdict: RiskTierChange, connection: asyncpg.Connection | None = None
    ) -> None:
        """One close's tier verdict (changed or held) in `risk_tier_history`, with its figures
        and the controller's memory after it."""
        await (connection or self.pool).execute(
            _INSERT_TIER_HISTORY,
            verdict.previous_tier.value,
            verdict.new_tier.value,
            verdict.trigger_source,
            verdict.history_metrics(),
            verdict.changed_at,
            verdict.verdict,
            verdict.reason,
        )

    async def tier_memory(self, connection: asyncpg.Connection | None = None) -> TierMemory:
        """The controller's memory as the last history row left it. A row without one (the
        owner's change, or a change recorded before the controller kept memory) starts a new
        record at that row: the owner's tier is the ceiling recovery climbs back to."""
        row = await (connection or self.pool).fetchrow(
            "SELECT * FROM risk_tier_history ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return TierMemory()
        stored = (row["trigger_metrics"] or {}).get("memory")
        if stored is not None:
            return TierMemory.from_json(stored)
        new = RiskTierName(row["new_tier"])
        if row["trigger_source"] in AUTOPILOT_SOURCES:
            # An autopilot change from before memory was kept: the tier it left stands for the owner's.
            new = max(new, RiskTierName(row["previous_tier"]), key=RISK_TIER_ORDER.index)
        return TierMemory(since=row["created_at"], ceiling=new)

    async def record_command(self, source: str) -> None:
        """An owner's command that is no configuration change (a read, a refusal, a confirmation
        tap) in the configuration audit, with where it came from (issue 17: the phone's commands
        are audited like API calls). Before and after are the same configuration."""
        async with self.pool.acquire() as connection:
            row = _jsonable(await self.config_row(connection))
            await connection.execute(
                "INSERT INTO trading_config_audit (previous_config, new_config, change_source) VALUES ($1, $2, $3)",
                row,
                row,
                source,
            )

    async def update_config_checked(self, changes: Mapping[str, Any], source: str) -> tuple[dict, dict]:
        """`update_config`, with a refusal by the database (a rule tying two fields together, a
        value it cannot store) raised as `ConfigRefused` naming the fields involved: nothing was
        written then, the transaction rolled back whole."""
        try:
            return await self.update_config(changes, source)
        except asyncpg.CheckViolationError as exc:
            definition = await self.pool.fetchval(_CONSTRAINT_DEFINITION, exc.constraint_name or "") or ""
            involved = tuple(n for n in changes if re.search(rf"\b{re.escape(n)}\b", definition)) or tuple(
                changes
            )
            raise ConfigRefused(
                involved,
                f"refused by the rule {definition or exc.constraint_name}: nothing was changed",
                echo=True,
            ) from None
        except (asyncpg.DataError, asyncpg.NumericValueOutOfRangeError) as exc:
            raise ConfigRefused(tuple(changes), f"could not be stored ({exc}): nothing was changed") from None

    async def save_notification_settings(
        self, settings: NotificationSettings, source: str, fallback: TradingConfig | None = None
    ) -> SettingsChange:
        """Save the notification settings with, in the same transaction, the audit record of
        the whole configuration row before and after, written as `update_config` writes it."""
        async with self.pool.acquire() as connection, connection.transaction():
            before = await connection.fetchrow("SELECT * FROM trading_engine_config WHERE id = 1 FOR UPDATE")
            change = await save_notification_settings(connection, settings, fallback)
            after = await self.config_row(connection)
            previous, new = _jsonable(before), _jsonable(after)
            if previous != new:
                await connection.execute(
                    "INSERT INTO trading_config_audit (previous_config, new_config, change_source) VALUES ($1, $2, $3)",
                    previous,
                    new,
                    source,
                )
        return change

    async def apply_environment(self, trading: TradingConfig) -> None:
        """Settings the owner set explicitly in the environment win at start; the rest of the
        configuration stays as last saved (e.g. through the API)."""
        changes = {name: getattr(trading, name) for name in ENV_COLUMNS if name in trading.model_fields_set}
        for name in ("risk_tier", "risk_tier_rule"):
            if name in changes:
                changes[name] = changes[name].value
        if changes:
            await self.update_config(changes, source="environment")

    # -- engine bookkeeping --------------------------------------------------------------

    async def engine_state(self, now: datetime) -> asyncpg.Record:
        """The engine's bookkeeping row; created on first start with `epoch = now`."""
        return await self.pool.fetchrow(_ENGINE_STATE, now)

    async def update_engine_state(self, **values: Any) -> None:
        columns = list(values)
        assignments = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(columns))
        await self.pool.execute(
            f"UPDATE engine_state SET {assignments}, updated_at = now() WHERE id = 1", *values.values()
        )

    # -- portfolio -----------------------------------------------------------------------

    async def held(self) -> Held:
        """What the broker's fills add up to, with the engine's stop levels and cost basis,
        and the cash, reserve and pending orders of the same instant (one read-only
        snapshot). One aggregate over every fill on record, which grows with the history: a
        step reads it once and hands it to everything that needs it."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await connection.fetch(_HELD_POSITIONS)
            balances = await connection.fetchrow(_BALANCES)
            pending = await connection.fetch(_PENDING_ORDERS)
        return Held(tuple(rows), balances["cash"], balances["reserve"], tuple(pending))

    # -- circuit breakers ---------------------------------------------------------------

    async def breaker_state(self) -> CircuitBreakerState:
        """Unresolved breaker events, folded into one state: the latest-expiring halt and
        each ticker's cooldown."""
        rows = await self.pool.fetch(
            "SELECT * FROM circuit_breaker_events WHERE resolved_at IS NULL ORDER BY created_at"
        )
        state = CircuitBreakerState()
        cooldowns: dict[str, datetime] = {}
        for r in rows:
            if r["ticker"] is not None and r["trigger_type"] == "single_position":
                cooldowns[r["ticker"]] = max(
                    cooldowns.get(r["ticker"], r["cooldown_expires"]), r["cooldown_expires"]
                )
                continue
            indefinite = r["cooldown_expires"] is None
            longer = (
                state.cooldown_expires is not None
                and not indefinite
                and r["cooldown_expires"] > state.cooldown_expires
            )
            if not state.active or indefinite or longer:
                state = CircuitBreakerState(True, r["trigger_type"], r["created_at"], r["cooldown_expires"])
        return CircuitBreakerState(
            state.active, state.trigger_type, state.triggered_at, state.cooldown_expires, cooldowns
        )

    async def record_breaker_event(self, event: CircuitBreakerEvent) -> None:
        await self.pool.execute(
            """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker, reason,
                   cooldown_expires, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            event.trigger_type.value,
            event.threshold_value,
            event.actual_value,
            event.ticker,
            event.reason,
            event.cooldown_expires,
            event.triggered_at,
        )

    async def trip_manual_breaker(self, event: CircuitBreakerEvent) -> bool:
        """Record the owner's halt unless one is already in force (then nothing is written:
        tripping twice is one halt). True when it was recorded."""
        async with self.pool.acquire() as connection, connection.transaction():
            # One writer at a time decides "already in force", so two clicks make one halt.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('manual circuit breaker'))")
            if await connection.fetchval(_MANUAL_IN_FORCE):
                return False
            await connection.execute(
                """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker,
                       reason, cooldown_expires, created_at) VALUES ($1, $2, $3, NULL, $4, NULL, $5)""",
                event.trigger_type.value,
                event.threshold_value,
                event.actual_value,
                event.reason,
                event.triggered_at,
            )
            return True

    async def clear_manual_breaker(self, now: datetime) -> bool:
        """Resolve the owner's halt; any other breaker in force stays. True when one was cleared."""
        cleared = await self.pool.fetch(
            "UPDATE circuit_breaker_events SET resolved_at = $1 "
            "WHERE resolved_at IS NULL AND trigger_type = 'manual' RETURNING id",
            now,
        )
        return bool(cleared)

    async def resolve_breaker_events(self, resolution: BreakerResolution, now: datetime) -> None:
        """Mark the expired events behind one resolution (the halt, or one ticker's cooldown)."""
        await self.pool.execute(
            """UPDATE circuit_breaker_events SET resolved_at = $1
               WHERE resolved_at IS NULL AND cooldown_expires IS NOT NULL AND cooldown_expires <= $1
                 AND ($2::text IS NULL AND ticker IS NULL OR ticker = $2)""",
            now,
            resolution.ticker,
        )

    async def stop_outs_since(self, since: datetime) -> list[datetime]:
        """Stop-outs at or after `since`: the volatility breaker's window includes both ends."""
        rows = await self.pool.fetch(
            """SELECT exit_at FROM closed_trades WHERE exit_reason IN ('stop_loss', 'trailing_stop') AND exit_at >= $1
               ORDER BY exit_at""",
            since,
        )
        return [r["exit_at"] for r in rows]

    # -- positions and faults ------------------------------------------------------------

    async def save_stop_levels(self, updates: Mapping[str, StopLevels], now: datetime) -> None:
        await self.pool.executemany(
            """UPDATE position_stop_levels SET stop_loss_price = $2, take_profit_price = $3,
                   trailing_stop_active = $4, atr_value = $5, atr_multiplier = $6, updated_at = $7
               WHERE ticker = $1 AND active""",
            [
                (
                    ticker,
                    lv.stop_loss_price,
                    lv.take_profit_price,
                    lv.trailing_stop_active,
                    lv.atr_value,
                    lv.atr_multiplier,
                    now,
                )
                for ticker, lv in updates.items()
            ],
        )

    async def micro_entries_since(self, since: datetime) -> int:
        """Micro-trade entries decided at or after `since`: what the daily limit counts (an
        intraday sell signal is decided on the micro path too, but opens nothing)."""
        return await self.pool.fetchval(
            """SELECT count(*) FROM trading_decisions WHERE is_micro_trade AND decision = 'act'
               AND side = 'buy' AND recommendation_id IS NOT NULL AND created_at >= $1""",
            since,
        )

    async def record_fault(self, component: str, error: str) -> None:
        await self.pool.execute(
            "INSERT INTO engine_faults (component, error) VALUES ($1, $2)", component, error[:2000]
        )

    async def park_recommendation(self, recommendation_id: int, error: str) -> None:
        """Record that the recommendation cannot be decided (its decision is refused even as a
        skip): the fault names it, and `undecided_recommendations` leaves it out from now on."""
        await self.pool.execute(
            """INSERT INTO engine_faults (component, error, recommendation_id) VALUES ('recommendations', $2, $1)
               ON CONFLICT (recommendation_id) WHERE recommendation_id IS NOT NULL DO NOTHING""",
            recommendation_id,
            error[:2000],
        )

    # -- recommendations -----------------------------------------------------------------

    async def undecided_recommendations(
        self, since: datetime | None, until: datetime, limit: int = 200
    ) -> list[Recommendation]:
        """Recommendations for the engine not decided yet, most confident first, generated from
        `since` (None: the engine's epoch) to `until`. `hold` and `research` rows are not for
        the engine; anything else, however malformed, is taken so that it gets a decision with
        a reason, unless it was parked (`park_recommendation`)."""
        rows = await self.pool.fetch(_UNDECIDED, since, until, limit)
        return [Recommendation.from_row(r) for r in rows]


# One round trip (it is on the decision path): the row as it was, or as just created.
_ENGINE_STATE = """
WITH created AS (INSERT INTO engine_state (id, epoch) VALUES (1, $1) ON CONFLICT (id) DO NOTHING RETURNING *)
SELECT * FROM created UNION ALL SELECT * FROM engine_state WHERE id = 1 LIMIT 1
"""

# The text of a CHECK constraint of the configuration row, to name the fields it checks.
_CONSTRAINT_DEFINITION = """
SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
WHERE c.conname = $1 AND c.conrelid = 'trading_engine_config'::regclass
"""

_INSERT_TIER_HISTORY = """
INSERT INTO risk_tier_history (previous_tier, new_tier, trigger_source, trigger_metrics, created_at, verdict, reason)
VALUES ($1, $2, $3, $4, coalesce($5, now()), $6, $7)
"""
AUTOPILOT_SOURCES = ("market_close", "emergency_liquidation")

_BALANCES = """
SELECT coalesce((SELECT cash FROM broker_account WHERE id = 1), 0) AS cash,
       coalesce((SELECT balance_after FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1), 0) AS reserve
"""

# Decided but without an outcome yet. An order the broker already filled or rejected is not
# pending even before its report is applied: a fill is already in the held positions.
_PENDING_ORDERS = """
SELECT o.ticker, o.side, o.quantity, o.stop_plan, o.trading_decision_id, o.delivered_at, t.sector
FROM order_outbox o
LEFT JOIN tickers t ON t.ticker = o.ticker
WHERE o.broker_status IS NULL AND o.cancelled_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM broker_orders b WHERE b.client_order_id = o.client_order_id
                  AND b.status IN ('filled', 'rejected'))
ORDER BY o.id
"""

_HELD_POSITIONS = """
WITH held AS (
    SELECT ticker, sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS quantity
    FROM broker_fills GROUP BY ticker
    HAVING sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) > 0
), lots AS (
    SELECT ticker, sum(remaining_quantity * cost_basis_per_share) / nullif(sum(remaining_quantity), 0) AS avg_cost,
           min(acquisition_date) AS first_acquired
    FROM tax_lots WHERE status = 'open' AND remaining_quantity > 0 GROUP BY ticker
)
SELECT h.ticker, h.quantity, t.sector, l.avg_cost, coalesce(s.created_at, l.first_acquired::timestamptz) AS opened_at,
       s.entry_price, s.stop_loss_price, s.take_profit_price, s.trailing_stop_active, s.atr_value,
       s.atr_multiplier, s.reward_risk_ratio, s.signal_confidence, s.is_micro_trade, s.updated_at
FROM held h
LEFT JOIN tickers t ON t.ticker = h.ticker
LEFT JOIN lots l ON l.ticker = h.ticker
LEFT JOIN position_stop_levels s ON s.ticker = h.ticker AND s.active
ORDER BY h.ticker
"""

_UNDECIDED = """
SELECT r.* FROM recommendations r
WHERE r.generated_at >= coalesce($1::timestamptz, (SELECT epoch FROM engine_state WHERE id = 1))
  AND r.generated_at <= $2
  AND r.action <> 'hold' AND r.mode <> 'research'
  AND NOT EXISTS (SELECT 1 FROM trading_decisions d WHERE d.recommendation_id = r.id)
  AND NOT EXISTS (SELECT 1 FROM engine_faults f WHERE f.recommendation_id = r.id)
ORDER BY (CASE WHEN r.confidence = 'NaN' THEN -1 ELSE r.confidence END) DESC, r.generated_at, r.id
LIMIT $3
"""
