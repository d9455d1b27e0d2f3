"""Migrations apply in order, once, recorded, and leave the schema seed task 1.1 asks for."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from services.shared.db import connect
from services.shared.migrations import discover, upgrade

pytestmark = pytest.mark.integration

SEED_TABLES = {
    "trading_engine_config",
    "reserve_pool_ledger",
    "risk_tier_history",
    "circuit_breaker_events",
    "trading_decisions",
    "position_stop_levels",
    "portfolio_snapshots",
    "backtest_runs",
    "backtest_trades",
    "tax_lots",
    "earnings_calendar",
    "correlation_matrix_cache",
    "notifications",
}
UPSTREAM_TABLES = {
    "tickers",
    "price_bars",
    "recommendations",
    "macro_events",
    "broker_orders",
    "broker_fills",
    "broker_account",
}
# Indexes named in seed task 1.1, as (table, columns that lead the index).
SEED_INDEXES = {
    ("reserve_pool_ledger", "created_at"),
    ("risk_tier_history", "created_at"),
    ("circuit_breaker_events", "created_at"),
    ("trading_decisions", "ticker"),
    ("trading_decisions", "recommendation_id"),
    ("trading_decisions", "decision"),
    ("position_stop_levels", "ticker"),
    ("portfolio_snapshots", "snapshot_date"),
    ("backtest_trades", "backtest_id"),
    ("tax_lots", "ticker"),
    ("earnings_calendar", "earnings_date"),
    ("earnings_calendar", "ticker"),
    ("notifications", "created_at"),
    ("notifications", "event_type"),
}

SCHEMA_QUERY = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name
"""


async def _schema(connection: asyncpg.Connection) -> tuple[list, list]:
    columns = [tuple(r) for r in await connection.fetch(SCHEMA_QUERY)]
    indexes = [
        tuple(r)
        for r in await connection.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
        )
    ]
    return columns, indexes


async def test_upgrade_twice_applies_everything_once(empty_database_url: str) -> None:
    connection = await connect(empty_database_url)
    try:
        first = await upgrade(connection)
        schema_after_first = await _schema(connection)
        second = await upgrade(connection)
        assert first == [m.path.name for m in discover()]
        assert second == []
        assert await _schema(connection) == schema_after_first
        recorded = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == [m.version for m in discover()]
    finally:
        await connection.close()


async def test_concurrent_upgrades_take_turns(empty_database_url: str) -> None:
    connections = [await connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(upgrade(c) for c in connections))
        assert sorted(len(r) for r in results) == [0, 0, len(discover())]
    finally:
        for connection in connections:
            await connection.close()


async def test_every_table_and_index_of_the_seed_exists(db: asyncpg.Connection) -> None:
    tables = {
        r["table_name"]
        for r in await db.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert SEED_TABLES | UPSTREAM_TABLES | {"trading_config_audit", "schema_migrations"} <= tables
    leading = set()
    for row in await db.fetch("SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"):
        first_column = row["indexdef"].split("(", 1)[1].split(")")[0].split(",")[0].split()[0]
        leading.add((row["tablename"], first_column))
    assert leading >= SEED_INDEXES


async def test_default_rows_exist(db: asyncpg.Connection) -> None:
    config = await db.fetchrow("SELECT * FROM trading_engine_config")
    assert config["enabled"] is False and config["risk_tier"] == "moderate"
    assert config["reserve_siphon_pct"] == Decimal("0.20")
    ledger = await db.fetch("SELECT * FROM reserve_pool_ledger")
    assert [(r["trigger_type"], r["balance_after"]) for r in ledger] == [("initial", 0)]


async def test_money_is_never_stored_as_floating_point(db: asyncpg.Connection) -> None:
    money_words = (
        "price",
        "amount",
        "cash",
        "balance",
        "pnl",
        "cost_basis",
        "capital",
        "value",
        "pool",
        "cap",
    )
    rows = await db.fetch("""SELECT table_name, column_name FROM information_schema.columns
                             WHERE table_schema = 'public' AND data_type IN ('double precision', 'real')""")
    # An optimisation's objective (a Sharpe ratio, a profit factor) is a float by nature, not money.
    objective_values = {("optimization_runs", "best_value"), ("optimization_trials", "value")}
    floating_money = [
        (r["table_name"], r["column_name"])
        for r in rows
        if any(w in r["column_name"] for w in money_words)
        and (r["table_name"], r["column_name"]) not in objective_values
    ]
    assert floating_money == []


async def test_a_decision_needs_a_reason_to_skip(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("""INSERT INTO trading_decisions (id, decision, side, ticker, risk_tier_at_decision,
                portfolio_heat_at_decision, active_pool_at_decision, reserve_pool_at_decision,
                circuit_breaker_status, decision_trace)
            VALUES (gen_random_uuid(), 'skip', 'buy', 'AAPL', 'moderate', 0, 0, 0, 'inactive', '{}')""")


_DECISION = """INSERT INTO trading_decisions (id, recommendation_id, decision, side, skip_reason, ticker,
        risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision, reserve_pool_at_decision,
        circuit_breaker_status, decision_trace)
    VALUES (gen_random_uuid(), $1, $2, 'buy', $3, $4, 'moderate', 0, 0, 0, 'inactive', $5)"""
_RECOMMENDATION = """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
    VALUES ('XYZ', 'buy', 0.8, 'paper_eligible', '20d', 'test', now()) RETURNING id"""
# (from a recommendation?, decision, trace) -> the category the dashboard and /metrics show: a skip's
# first refusing check, `entry` for an act on a recommendation, the exit rule for the others.
CATEGORIES = [
    (
        True,
        "skip",
        {
            "checks": [
                {"check": "input", "passed": True},
                {"check": "sizing", "passed": False},
                {"check": "later", "passed": False},
            ]
        },
        "sizing",
    ),
    (True, "skip", {"checks": []}, "unknown"),
    (True, "act", {"checks": [{"check": "input", "passed": True}]}, "entry"),
    (False, "act", {"exit": {"reason": "stop_loss"}, "checks": []}, "stop_loss"),
    (False, "act", {"checks": []}, "exit"),
]


async def test_a_decisions_category_is_stored_for_rows_before_and_after_the_migration(
    empty_database_url: str, tmp_path
) -> None:
    """Migration 022 stores the category; rows decided before it get theirs too."""
    earlier = [m for m in discover() if m.version < "022"]
    for migration in earlier:
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    connection = await connect(empty_database_url)
    try:
        await upgrade(connection, tmp_path)

        async def insert(label: str) -> None:
            for i, (from_recommendation, decision, trace, _) in enumerate(CATEGORIES):
                rec = await connection.fetchval(_RECOMMENDATION) if from_recommendation else None
                reason = "refused" if decision == "skip" else None
                await connection.execute(_DECISION, rec, decision, reason, f"{label}{i}", trace)

        await insert("OLD")
        await upgrade(connection)
        await insert("NEW")
        stored = dict(await connection.fetch("SELECT ticker, category FROM trading_decisions"))
        for label in ("OLD", "NEW"):
            assert [stored[f"{label}{i}"] for i in range(len(CATEGORIES))] == [c for *_, c in CATEGORIES]
    finally:
        await connection.close()


async def test_order_rejected_alerts_are_switched_on_for_accounts_made_before_them(
    empty_database_url: str, tmp_path
) -> None:
    """Migration 029 adds `order_rejected` to an existing account's chosen event types (and
    keeps the owner's other choices as they were); the notifications table accepts it."""
    for migration in (m for m in discover() if m.version < "029"):
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    connection = await connect(empty_database_url)
    try:
        await upgrade(connection, tmp_path)
        await connection.execute(
            "UPDATE trading_engine_config SET notification_event_types = ARRAY['daily_summary']"
        )
        await upgrade(connection)
        assert await connection.fetchval("SELECT notification_event_types FROM trading_engine_config") == [
            "daily_summary",
            "order_rejected",
            "reconciliation_discrepancy",  # migration 031, later, does the same for its type
        ]
        await connection.execute(
            "INSERT INTO notifications (event_type, channel, message) VALUES ('order_rejected', 'sms', 'x')"
        )
    finally:
        await connection.close()


async def test_reconciliation_alerts_are_switched_on_and_its_pause_and_stop_states_accepted(
    empty_database_url: str, tmp_path
) -> None:
    """Migration 031 adds `reconciliation_discrepancy` to an existing account's chosen event
    types, a `reconciliation` breaker trigger, and the resting stops' order states."""
    for migration in (m for m in discover() if m.version < "031"):
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    connection = await connect(empty_database_url)
    try:
        await upgrade(connection, tmp_path)
        await connection.execute(
            "UPDATE trading_engine_config SET notification_event_types = ARRAY['order_rejected']"
        )
        await upgrade(connection)
        assert await connection.fetchval("SELECT notification_event_types FROM trading_engine_config") == [
            "order_rejected",
            "reconciliation_discrepancy",
        ]
        await connection.execute(
            "INSERT INTO notifications (event_type, channel, message) VALUES ('reconciliation_discrepancy', 'sms', 'x')"
        )
        await connection.execute(
            "INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value) VALUES ('reconciliation', 0, 1)"
        )
        await connection.execute(
            """INSERT INTO broker_orders (client_order_id, job_id, ticker, side, quantity, reason, status)
               VALUES ('stop-1', gen_random_uuid(), 'XYZ', 'sell', 1, 'stop_loss', 'cancelling')"""
        )
    finally:
        await connection.close()
