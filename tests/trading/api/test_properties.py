"""Seed properties 35 (task 20.2) and 29 (task 20.3), with hypothesis on the real database.

Property 35: every configuration change accepted through the API leaves one audit record
with the previous configuration, the new one and the change's source; a refused change
(a field out of range, or a rule tying two fields together) leaves configuration and audit
trail exactly as they were.

Property 29: each state object the engine persists (configuration, Reserve Pool ledger
entries, risk tier history, circuit breaker events, portfolio snapshots, backtest results)
reads back equal to what was written, through the engine's own writers and the API's reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared.db import create_pool
from services.shared.schemas import CircuitBreakerTriggerType, ReservePoolTriggerType, RiskTierName
from services.trading.api.config_models import ConfigUpdate
from services.trading.app import create_app
from services.trading.backtest import BacktestConfig, BacktestResult, BacktestTrade, Metrics
from services.trading.backtest.results import TaxReport
from services.trading.backtest.run_store import save_backtest
from services.trading.core.circuit_breaker import CircuitBreakerEvent
from services.trading.core.clock import SimulatedClock
from services.trading.core.models import ClosedTrade, OpenPosition, PortfolioState
from services.trading.core.performance_tracker import compute_metrics
from services.trading.core.reserve_pool import ReserveLedgerEntry
from services.trading.core.risk_tier_controller import RiskTierChange
from services.trading.live import session_close
from services.trading.live.engine_store import EngineStore
from services.trading.live.fill_handler import insert_ledger_entry
from tests.trading.api.conftest import AUTH, make_runtime
from tests.trading.engine_harness import close_pool

pytestmark = pytest.mark.integration

RESET = """
TRUNCATE trading_config_audit, reserve_pool_ledger, risk_tier_history, circuit_breaker_events, portfolio_snapshots,
         backtest_runs, backtest_trades CASCADE;
DELETE FROM trading_engine_config;
INSERT INTO trading_engine_config (id) VALUES (1);
"""
NOW = datetime(2024, 3, 1, 15, tzinfo=UTC)


def _decimals(low: str, high: str, places: int = 4) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(low), Decimal(high), places=places, allow_nan=False, allow_infinity=False)


# field -> (values in range, values out of range)
FIELDS: dict[str, tuple[st.SearchStrategy, st.SearchStrategy]] = {
    "enabled": (st.booleans(), st.just("maybe")),
    "paused": (st.booleans(), st.just(3)),
    "risk_tier": (st.sampled_from(["conservative", "moderate", "aggressive"]), st.just("reckless")),
    "max_open_positions": (st.integers(1, 500), st.integers(-5, 0) | st.integers(501, 10**6)),
    "gradual_entry_tranches": (st.integers(1, 20), st.integers(21, 1000)),
    "reserve_siphon_pct": (_decimals("0", "1"), _decimals("1.0001", "9")),
    "absolute_position_cap": (_decimals("0.01", "100000", 2), _decimals("-1000", "0", 2)),
    "daily_loss_limit_pct": (_decimals("0.0001", "1"), _decimals("-1", "0")),
    "correlation_reduce_threshold": (_decimals("0", "1", 2), _decimals("1.01", "2", 2)),
    "correlation_reject_threshold": (_decimals("0", "1", 2), _decimals("-1", "-0.01", 2)),
    "earnings_reduce_sessions": (st.integers(0, 30), st.integers(31, 99)),
    "earnings_reject_sessions": (st.integers(0, 30), st.integers(-9, -1)),
    "risk_tier_rule": (st.sampled_from(["guarded", "plan"]), st.just("literal")),
    "risk_tier_min_trades": (st.integers(1, 1000), st.integers(-5, 0) | st.integers(1001, 10**6)),
    "risk_tier_min_sessions": (st.integers(0, 1000), st.integers(-9, -1)),
    "risk_tier_recovery_sessions": (st.integers(0, 1000), st.integers(1001, 10**6)),
}


@st.composite
def config_changes(draw) -> tuple[dict[str, Any], set[str]]:
    """A change of 1-4 fields; returns it with the names of the fields given out-of-range values."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=4, unique=True))
    invalid = {n for n in names if draw(st.integers(0, 5)) == 0}
    change = {n: draw(FIELDS[n][1] if n in invalid else FIELDS[n][0]) for n in names}
    return {n: str(v) if isinstance(v, Decimal) else v for n, v in change.items()}, invalid


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(sent, (bool, int)) or isinstance(stored, bool):
        return stored == sent
    try:
        return Decimal(str(stored)) == Decimal(str(sent))
    except ArithmeticError:
        return str(stored) == str(sent)


def _breaks_a_rule(config: dict[str, Any]) -> bool:
    return (
        Decimal(str(config["correlation_reduce_threshold"]))
        > Decimal(str(config["correlation_reject_threshold"]))
        or config["earnings_reject_sessions"] > config["earnings_reduce_sessions"]
    )


@asynccontextmanager
async def _api(database_url: str, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    pool = await create_pool(database_url, max_size=4)
    redis = aioredis.from_url(redis_url)
    try:
        await pool.execute(RESET)
        runtime = make_runtime(pool, redis, SimulatedClock(NOW))
        app = create_app(runtime, dashboard_dir=None)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as client:
            yield client, pool
    finally:
        await redis.aclose()
        await close_pool(pool)


async def _config(pool) -> dict[str, Any]:
    return dict(await pool.fetchrow("SELECT * FROM trading_engine_config"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(config_changes(), min_size=1, max_size=5))
def test_property_35_configuration_change_audit_trail(database_url, redis_url, changes) -> None:
    async def scenario() -> None:
        async with _api(database_url, redis_url) as (client, pool):
            for change, invalid in changes:
                before = await _config(pool)
                audits = await pool.fetchval("SELECT count(*) FROM trading_config_audit")
                response = await client.put("/api/trading/config", headers=AUTH, json=change)
                merged = {**before, **change}
                if invalid or _breaks_a_rule(merged):
                    assert response.status_code == 422, (change, response.text)
                    named = {e["loc"][1] for e in response.json()["detail"] if len(e["loc"]) > 1}
                    assert named & (invalid or set(change)), (change, response.json())
                    assert await _config(pool) == before
                    assert await pool.fetchval("SELECT count(*) FROM trading_config_audit") == audits
                    continue
                assert response.status_code == 200, (change, response.text)
                after = await _config(pool)
                assert all(_same(after[name], value) for name, value in change.items())
                differs = any(not _same(before[name], value) for name, value in change.items())
                assert await pool.fetchval("SELECT count(*) FROM trading_config_audit") == audits + differs
                if differs:
                    audit = await pool.fetchrow("SELECT * FROM trading_config_audit ORDER BY id DESC LIMIT 1")
                    assert audit["change_source"].startswith("api: PUT /api/trading/config")
                    for name in ConfigUpdate.model_fields:
                        assert (
                            _same(audit["previous_config"][name], before[name])
                            or name == "risk_tier_overrides"
                        )
                        assert _same(audit["new_config"][name], after[name]) or name == "risk_tier_overrides"

    asyncio.run(scenario())


# -- property 29 -----------------------------------------------------------------------------------

moments = st.datetimes(datetime(2000, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC))
words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
money = _decimals("0", "1000000", 4)

ledger_entries = st.lists(
    st.builds(
        ReserveLedgerEntry,
        amount=_decimals("-5000", "5000"),
        balance_after=money,
        trigger_type=st.sampled_from(list(ReservePoolTriggerType)),
        notes=words,
        created_at=moments,
        reference_id=st.none() | words,
    ),
    max_size=4,
)
tier_changes = st.lists(
    st.builds(
        RiskTierChange,
        previous_tier=st.sampled_from(list(RiskTierName)),
        new_tier=st.sampled_from(list(RiskTierName)),
        trigger_source=st.sampled_from(["risk_tier_controller", "emergency_liquidation"]),
        reason=words,
        changed_at=moments,
        trigger_metrics=st.dictionaries(
            st.sampled_from(["win_rate", "drawdown", "reserve_pct"]),
            st.none() | st.floats(-1, 1, allow_nan=False),
            max_size=3,
        ),
    ),
    max_size=3,
)
breaker_events = st.lists(
    st.builds(
        CircuitBreakerEvent,
        trigger_type=st.sampled_from(list(CircuitBreakerTriggerType)),
        threshold_value=_decimals("0", "1"),
        actual_value=_decimals("-1", "1"),
        triggered_at=moments,
        cooldown_expires=st.none() | moments,
        reason=words,
        ticker=st.none() | st.sampled_from(["AAPL", "IBM"]),
    ),
    max_size=3,
)
positions = st.lists(
    st.builds(
        OpenPosition,
        ticker=st.sampled_from(["AAPL", "IBM", "MSFT"]),
        quantity=_decimals("1", "500", 0),
        entry_price=_decimals("1", "900", 2),
        current_price=_decimals("1", "900", 2),
        sector=st.sampled_from(["Technology", "Energy"]),
        stop_loss_price=_decimals("0.5", "800", 2),
        take_profit_price=_decimals("900", "2000", 2),
        signal_confidence=_decimals("0", "1", 2),
        is_micro_trade=st.booleans(),
    ),
    max_size=3,
    unique_by=lambda p: p.ticker,
)
closed = st.lists(
    st.builds(
        ClosedTrade,
        ticker=st.just("AAPL"),
        entry_price=_decimals("1", "900", 2),
        exit_price=_decimals("1", "900", 2),
        quantity=_decimals("1", "100", 0),
        entry_at=st.just(NOW),
        exit_at=st.just(NOW),
        is_micro_trade=st.booleans(),
    ),
    max_size=4,
)
backtest_trades = st.lists(
    st.builds(
        BacktestTrade,
        ticker=st.sampled_from(["AAPL", "IBM"]),
        quantity=_decimals("1", "100", 0),
        entry_price=_decimals("1", "900", 4),
        entry_at=moments,
        exit_price=st.none() | _decimals("1", "900", 4),
        exit_at=moments,
        fees=_decimals("0", "5", 2),
        exit_reason=st.none() | st.sampled_from(["stop_loss", "signal"]),
        recommendation_id=st.none() | st.integers(1, 10**9),
    ),
    max_size=4,
)
stats = st.floats(-10, 10, allow_nan=False)


@st.composite
def state_objects(draw) -> dict[str, Any]:
    valid = {n: draw(strategies[0]) for n, strategies in FIELDS.items() if draw(st.booleans())}
    low, high = sorted([draw(_decimals("0", "1", 2)), draw(_decimals("0", "1", 2))])
    valid.update(correlation_reduce_threshold=low, correlation_reject_threshold=high)
    reject, reduce = sorted([draw(st.integers(0, 30)), draw(st.integers(0, 30))])
    valid.update(earnings_reject_sessions=reject, earnings_reduce_sessions=reduce)
    trades = draw(backtest_trades)
    return {
        "config": valid,
        "ledger": draw(ledger_entries),
        "tiers": draw(tier_changes),
        "breakers": draw(breaker_events),
        "portfolio": PortfolioState(tuple(draw(positions)), draw(money), draw(_decimals("0", "1000", 2))),
        "closed": draw(closed),
        "curve": draw(st.lists(_decimals("1", "100000", 2), max_size=5)),
        "session": draw(st.dates(date(2001, 1, 1), date(2029, 12, 31))),
        "backtest": (
            draw(st.sampled_from(["completed", "failed"])),
            draw(st.none() | words),
            trades,
            Metrics(
                draw(money),
                draw(stats),
                draw(stats),
                draw(stats),
                draw(st.floats(0, 1)),
                draw(st.floats(0, 1)),
                draw(st.floats(0, 50) | st.just(float("inf"))),
                len(trades),
            ),
            draw(st.lists(_decimals("1", "100000", 2), min_size=1, max_size=5)),
        ),
    }


def _backtest_result(
    status: str, error: str | None, trades: list[BacktestTrade], metrics: Metrics, values: list[Decimal]
) -> BacktestResult:
    config = BacktestConfig(date(2020, 1, 2), date(2020, 3, 31), Decimal(10_000), RiskTierName.MODERATE)
    closed_trades = tuple(t for t in trades if t.exit_price is not None)
    still_open = tuple(replace(t, exit_at=None, exit_reason=None) for t in trades if t.exit_price is None)
    curve = tuple((date(2020, 1, 2 + i), v) for i, v in enumerate(values))
    return BacktestResult(
        config,
        status,
        error if status == "failed" else None,
        metrics,
        closed_trades,
        still_open,
        curve,
        (),
        (),
        (),
        Decimal(0),
        "moderate",
        TaxReport(Decimal(0), Decimal(0), ()),
        10,
        len(values) + 1,
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(objects=state_objects())
def test_property_29_persistence_round_trip(database_url, redis_url, objects) -> None:
    async def scenario() -> None:
        async with _api(database_url, redis_url) as (client, pool):
            store = EngineStore(pool)
            # configuration: the store's audited update, read back through the API
            await store.update_config(ConfigUpdate(**objects["config"]).changes(), source="property 29")
            shown = (await client.get("/api/trading/config", headers=AUTH)).json()
            assert all(_same(shown[name], value) for name, value in objects["config"].items())
            # Reserve Pool ledger entries
            async with pool.acquire() as connection:
                for entry in objects["ledger"]:
                    await insert_ledger_entry(connection, entry)
            rows = await pool.fetch("SELECT * FROM reserve_pool_ledger ORDER BY id")
            assert [
                ReserveLedgerEntry(
                    r["amount"],
                    r["balance_after"],
                    ReservePoolTriggerType(r["trigger_type"]),
                    r["notes"],
                    r["created_at"],
                    r["reference_id"],
                )
                for r in rows
            ] == objects["ledger"]
            if objects["ledger"]:
                status = (await client.get("/api/trading/status", headers=AUTH)).json()
                assert Decimal(status["reserve_pool"]) == objects["ledger"][-1].balance_after
            # risk tier history (and the tier it sets); the config update above may have
            # written a row of its own (an owner's tier change is history too)
            first_new = await pool.fetchval("SELECT coalesce(max(id), 0) + 1 FROM risk_tier_history")
            for change in objects["tiers"]:
                await session_close._record_tier_change(store, change)
            rows = await pool.fetch("SELECT * FROM risk_tier_history WHERE id >= $1 ORDER BY id", first_new)
            assert [
                (
                    r["previous_tier"],
                    r["new_tier"],
                    r["trigger_source"],
                    r["trigger_metrics"],
                    r["created_at"],
                )
                for r in rows
            ] == [
                (
                    c.previous_tier.value,
                    c.new_tier.value,
                    c.trigger_source,
                    dict(c.trigger_metrics),
                    c.changed_at,
                )
                for c in objects["tiers"]
            ]
            # circuit breaker events, written by the engine's store
            for event in objects["breakers"]:
                await store.record_breaker_event(event)
            rows = await pool.fetch("SELECT * FROM circuit_breaker_events ORDER BY id")
            assert [
                CircuitBreakerEvent(
                    CircuitBreakerTriggerType(r["trigger_type"]),
                    r["threshold_value"],
                    r["actual_value"],
                    r["created_at"],
                    r["cooldown_expires"],
                    r["reason"],
                    r["ticker"],
                )
                for r in rows
            ] == objects["breakers"]
            # the day's snapshot, written at the session close, read through the API
            portfolio = objects["portfolio"]
            report = compute_metrics(
                portfolio=portfolio,
                closed_trades=objects["closed"],
                equity_curve=objects["curve"],
                start_of_day_value=portfolio.total_value,
                computed_at=NOW,
            )
            await session_close._snapshot(
                pool, objects["session"], report, RiskTierName.AGGRESSIVE, portfolio, NOW
            )
            [snapshot] = (await client.get("/api/trading/metrics/history", headers=AUTH)).json()["items"]
            m = report.metrics
            assert snapshot["snapshot_date"] == objects["session"].isoformat()
            assert Decimal(snapshot["portfolio_value"]) == m.total_portfolio_value
            assert Decimal(snapshot["reserve_pool"]) == m.reserve_pool == portfolio.reserve_pool
            assert Decimal(snapshot["portfolio_heat"]) == m.portfolio_heat
            assert Decimal(snapshot["realized_pnl"]) == m.realized_pnl
            assert Decimal(snapshot["unrealized_pnl"]) == m.unrealized_pnl
            assert (
                snapshot["win_rate"],
                snapshot["sharpe_ratio"],
                snapshot["max_drawdown"],
                snapshot["current_drawdown"],
            ) == (m.win_rate, m.sharpe_ratio, m.max_drawdown, m.current_drawdown)
            assert snapshot["trade_count"] == m.trade_count and snapshot["risk_tier"] == "aggressive"
            assert snapshot["profit_factor_infinite"] == (m.profit_factor == float("inf"))
            if m.profit_factor != float("inf"):
                assert snapshot["profit_factor"] == m.profit_factor
            # a backtest result, saved by the backtester's store, read through the API
            result = _backtest_result(*objects["backtest"])
            backtest_id = await save_backtest(pool, result)
            shown = (await client.get(f"/api/trading/backtest/{backtest_id}", headers=AUTH)).json()
            assert shown["status"] == result.status and shown["error_message"] == result.error
            assert Decimal(shown["final_value"]) == result.metrics.final_value
            assert shown["trade_count"] == result.metrics.trade_count
            assert shown["profit_factor_infinite"] == (result.metrics.profit_factor == float("inf"))
            for name in ("total_return", "sharpe_ratio", "max_drawdown", "win_rate"):
                assert shown[name] == getattr(result.metrics, name)
            assert [
                (
                    t["ticker"],
                    Decimal(t["quantity"]),
                    Decimal(t["entry_price"]),
                    None if t["exit_price"] is None else Decimal(t["exit_price"]),
                    Decimal(t["fees"]),
                    t["exit_reason"],
                    t["recommendation_id"],
                )
                for t in shown["trades"]
            ] == [
                (
                    t.ticker,
                    t.quantity,
                    t.entry_price,
                    t.exit_price,
                    t.fees,
                    t.exit_reason,
                    t.recommendation_id,
                )
                for t in (*result.trades, *result.open_positions)
            ]
            assert [(p["date"], Decimal(p["value"])) for p in shown["equity_curve"]] == [
                (d.isoformat(), round(v, 2)) for d, v in result.equity_curve
            ]

    asyncio.run(scenario())
