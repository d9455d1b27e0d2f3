"""The owner's manual circuit breaker through the API (issue 15): halt with a reason, clear,
idempotent both ways, 422 naming the field on bad input, and the halt stops the live engine's
new entries until cleared while an automatic breaker in force outlives the clear."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.trading.api.conftest import AUTH
from tests.trading.engine_harness import (
    RISING,
    at,
    build_stack,
    enable_engine,
    recommend,
    seed_ticker,
    sessions,
)

pytestmark = pytest.mark.integration

HALT, CLEAR = "/api/trading/breaker/halt", "/api/trading/breaker/clear"


async def _events(pool) -> list:
    return [dict(r) for r in await pool.fetch("SELECT * FROM circuit_breaker_events ORDER BY id")]


async def test_halt_then_clear_idempotently_with_the_reason_shown(api) -> None:
    first = await api.client.post(HALT, json={"reason": "  earnings season, I am away  "}, headers=AUTH)
    assert first.status_code == 200, first.text
    body = first.json()
    breaker = body["circuit_breaker"]
    assert body["changed"] is True and breaker["active"] is True and breaker["trigger"] == "manual"
    assert breaker["until"] is None and "earnings season, I am away (api: POST" in breaker["reason"]
    [event] = await _events(api.pool)
    assert (event["trigger_type"], event["cooldown_expires"], event["resolved_at"]) == ("manual", None, None)
    status = (await api.client.get("/api/trading/status", headers=AUTH)).json()["circuit_breaker"]
    assert status["active"] is True and status["trigger"] == "manual"

    again = await api.client.post(HALT, json={"reason": "second click"}, headers=AUTH)
    assert again.json()["changed"] is False and len(await _events(api.pool)) == 1

    api.clock.advance(timedelta(minutes=5))
    cleared = await api.client.post(CLEAR, headers=AUTH)
    assert cleared.status_code == 200 and cleared.json()["changed"] is True
    assert cleared.json()["circuit_breaker"]["active"] is False
    [event] = await _events(api.pool)
    assert event["resolved_at"] == api.clock.now()
    assert (await api.client.post(CLEAR, headers=AUTH)).json()["changed"] is False


async def test_clearing_the_owner_s_halt_leaves_an_automatic_one_in_force(api) -> None:
    now = api.clock.now()
    await api.pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, reason,
               cooldown_expires, created_at) VALUES ('volatility', 3, 3, 'three stop-outs', $1, $2)""",
        now + timedelta(minutes=60),
        now,
    )
    await api.client.post(HALT, json={"reason": "stop"}, headers=AUTH)
    cleared = (await api.client.post(CLEAR, headers=AUTH)).json()
    assert cleared["changed"] is True
    assert (
        cleared["circuit_breaker"]["active"] is True and cleared["circuit_breaker"]["trigger"] == "volatility"
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": None},
        {"reason": 5},
        {"reason": True},
        {"reason": ["stop"]},
        {"reason": "x" * 501},
        {"reason": "nul \x00 inside"},
        {"reason": "line\nbreak"},
    ],
)
async def test_a_bad_reason_is_422_naming_it_and_halts_nothing(api, body) -> None:
    response = await api.client.post(HALT, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    locs = [tuple(e["loc"]) for e in response.json()["detail"]]
    assert any(loc[:2] == ("body", "reason") or loc == ("body",) for loc in locs), locs
    assert all(e["msg"] for e in response.json()["detail"])
    assert await _events(api.pool) == []


async def test_an_unknown_field_is_422_naming_it(api) -> None:
    response = await api.client.post(HALT, json={"reason": "x", "until": "tomorrow"}, headers=AUTH)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "until"]]
    assert await _events(api.pool) == []


async def test_the_halt_refuses_the_live_engine_s_new_entries_until_cleared(api, redis_client) -> None:
    pool = api.pool
    days = await seed_ticker(pool, "XYZ", RISING)
    await enable_engine(pool, gradual_entry_tranches=1)
    day = sessions(days[-1], 2)[1]
    stack = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    try:
        await api.client.post(HALT, json={"reason": "market looks wrong"}, headers=AUTH)
        first = await recommend(pool, "XYZ", at(days[-1], 16, 10))
        await stack.step(at(day, 9, 45))
        refused = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", first)
        assert refused["decision"] == "skip" and "circuit breaker manual" in refused["skip_reason"]
        assert await pool.fetchval("SELECT count(*) FROM broker_orders") == 0
        await api.client.post(CLEAR, headers=AUTH)
        second = await recommend(pool, "XYZ", at(day, 9, 50))
        await stack.step(at(day, 10, 0))
        acted = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", second)
        assert acted["decision"] == "act", acted["skip_reason"]
    finally:
        await stack.engine.stop()
