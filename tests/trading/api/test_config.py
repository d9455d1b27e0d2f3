"""Configuration through the API (seed tasks 20.1, 20.2; docs/contracts.md section 7): read, change all or
nothing with an audit record, pause and resume idempotently, refuse with 401 or 422 and then
change nothing."""

from __future__ import annotations

from datetime import date

import pytest

from services.trading.core.clock import SimulatedClock
from tests.trading.api.conftest import AUTH, make_runtime, serve
from tests.trading.engine_harness import RecordingNotifier, at

pytestmark = pytest.mark.integration

WRITES = [
    ("PUT", "/api/trading/config", {"max_open_positions": 5}),
    ("POST", "/api/trading/pause", None),
    ("POST", "/api/trading/resume", None),
    (
        "POST",
        "/api/trading/backtest",
        {"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 10000},
    ),
    ("PUT", "/api/trading/notifications/config", {"sms_rate_limit_per_hour": 3}),
    ("POST", "/api/trading/breaker/halt", {"reason": "going on holiday"}),
    ("POST", "/api/trading/breaker/clear", None),
]


async def _state(pool) -> tuple:
    config = dict(await pool.fetchrow("SELECT * FROM trading_engine_config"))
    audits = await pool.fetchval("SELECT count(*) FROM trading_config_audit")
    runs = await pool.fetchval("SELECT count(*) FROM backtest_runs")
    breakers = await pool.fetch("SELECT * FROM circuit_breaker_events ORDER BY id")
    return config, audits, runs, breakers


async def test_get_config_shows_every_field_and_the_tiers(api) -> None:
    response = await api.client.get("/api/trading/config")
    assert response.status_code == 200
    body = response.json()
    assert body["risk_tier"] == "moderate" and body["enabled"] is False and body["paused"] is False
    assert body["absolute_position_cap"] == "2500" and body["max_open_positions"] == 10
    assert body["tiers"]["aggressive"]["max_portfolio_heat"] == "0.15"  # docs/contracts.md section 5


async def test_a_change_is_applied_and_audited_with_its_source(api) -> None:
    response = await api.client.put(
        "/api/trading/config",
        headers=AUTH,
        json={"max_open_positions": 5, "risk_tier": "conservative", "absolute_position_cap": "1500.50"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["changed"]) == ["absolute_position_cap", "max_open_positions", "risk_tier"]
    assert body["config"]["max_open_positions"] == 5 and body["config"]["absolute_position_cap"] == "1500.50"
    audit = await api.pool.fetchrow("SELECT * FROM trading_config_audit ORDER BY id DESC LIMIT 1")
    assert audit["previous_config"]["max_open_positions"] == 10
    assert audit["new_config"]["max_open_positions"] == 5
    assert audit["new_config"]["risk_tier"] == "conservative"
    assert "PUT /api/trading/config" in audit["change_source"]
    settings = await api.runtime.store.load_settings()
    assert settings.max_open_positions == 5 and settings.risk_tier.value == "conservative"
    # The owner's tier change sits in the tier's history beside the controller's.
    (history,) = await api.pool.fetch("SELECT * FROM risk_tier_history")
    assert (history["previous_tier"], history["new_tier"]) == ("moderate", "conservative")
    assert "PUT /api/trading/config" in history["trigger_source"]


async def test_tier_overrides_replace_the_defaults_they_name(api) -> None:
    response = await api.client.put(
        "/api/trading/config",
        headers=AUTH,
        json={"risk_tier_overrides": {"moderate": {"min_confidence": 0.7}}},
    )
    assert response.status_code == 200, response.text
    tiers = response.json()["config"]["tiers"]
    assert tiers["moderate"]["min_confidence"] == "0.7" and tiers["moderate"]["max_position_pct"] == "0.10"
    settings = await api.runtime.store.load_settings()
    assert str(settings.tier.min_confidence) == "0.7"


async def test_an_empty_change_writes_nothing(api) -> None:
    before = await _state(api.pool)
    response = await api.client.put("/api/trading/config", headers=AUTH, json={})
    assert response.status_code == 200 and response.json()["changed"] == []
    assert await _state(api.pool) == before


async def test_the_current_value_in_another_scale_is_no_change(api) -> None:
    """0.50 for a stored 0.5 is the same number: nothing to audit, nothing reported changed
    (property 35 found this: the audit used to compare the numbers' text)."""
    before = await _state(api.pool)
    current = before[0]["correlation_reduce_threshold"]
    response = await api.client.put(
        "/api/trading/config", headers=AUTH, json={"correlation_reduce_threshold": f"{current:.4f}"}
    )
    assert response.status_code == 200 and response.json()["changed"] == []
    config, audits, *_ = await _state(api.pool)
    assert audits == before[1] == 0
    assert config["correlation_reduce_threshold"] == current


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_open_positions": 0}, "max_open_positions"),
        ({"reserve_siphon_pct": 1.5}, "reserve_siphon_pct"),
        ({"risk_tier": "reckless"}, "risk_tier"),
        ({"absolute_position_cap": "-5"}, "absolute_position_cap"),
        ({"polling_interval_seconds": "NaN"}, "polling_interval_seconds"),
        ({"enabled": None}, "enabled"),
        ({"leverage": 10}, "leverage"),
        ({"risk_tier_overrides": {"moderate": {"min_confidence": 0}}}, "risk_tier_overrides"),
        ({"risk_tier_overrides": {"moderate": {"colour": "red"}}}, "risk_tier_overrides"),
        ({"max_open_positions": 5, "daily_loss_limit_pct": 0}, "daily_loss_limit_pct"),
    ],
)
async def test_an_invalid_field_is_refused_by_name_and_nothing_changes(api, body, field) -> None:
    before = await _state(api.pool)
    response = await api.client.put("/api/trading/config", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][:2] == ["body", field] and e["msg"] for e in errors), errors
    assert await _state(api.pool) == before


async def test_a_change_refused_half_way_by_the_database_leaves_nothing_changed(api) -> None:
    """Each value is in range on its own; together with the stored reject threshold (0.8) the
    reduce threshold breaks the database's rule reduce <= reject, inside the transaction that
    would also have changed max_open_positions."""
    before = await _state(api.pool)
    response = await api.client.put(
        "/api/trading/config",
        headers=AUTH,
        json={"max_open_positions": 4, "correlation_reduce_threshold": 0.9},
    )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "correlation_reduce_threshold"]]
    assert "correlation_reject_threshold" in errors[0]["msg"] and "nothing was changed" in errors[0]["msg"]
    assert await _state(api.pool) == before


async def test_pause_and_resume_are_idempotent_and_audited(api) -> None:
    first = await api.client.post("/api/trading/pause", headers=AUTH)
    assert first.status_code == 200 and first.json() == {"enabled": False, "paused": True, "changed": True}
    again = await api.client.post("/api/trading/pause", headers=AUTH)
    assert again.json()["changed"] is False and again.json()["paused"] is True
    assert await api.pool.fetchval("SELECT count(*) FROM trading_config_audit") == 1
    audit = await api.pool.fetchrow("SELECT * FROM trading_config_audit")
    assert audit["previous_config"]["paused"] is False and audit["new_config"]["paused"] is True
    assert "pause" in audit["change_source"]
    resumed = await api.client.post("/api/trading/resume", headers=AUTH)
    assert resumed.json() == {"enabled": False, "paused": False, "changed": True}
    assert (await api.client.post("/api/trading/resume", headers=AUTH)).json()["changed"] is False
    assert await api.pool.fetchval("SELECT count(*) FROM trading_config_audit") == 2


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic dXNlcjpwYXNz", "Bearer "])
async def test_a_write_without_the_right_token_is_401_and_changes_nothing(
    api, method, path, body, header
) -> None:
    before = await _state(api.pool)
    headers = {"Authorization": header} if header is not None else {}
    response = await api.client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    if header is not None:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert await _state(api.pool) == before


async def test_the_owners_tier_change_is_announced_and_in_the_history(pool, redis_client) -> None:
    # Issue 15: the autopilot's tier change reached the owner, the owner's own did not.
    clock = SimulatedClock(at(date(2024, 3, 1), 10))
    notifier = RecordingNotifier()
    async for client in serve(make_runtime(pool, redis_client, clock, notifications=notifier)):
        for tier in ("aggressive", "aggressive", "conservative"):
            response = await client.put("/api/trading/config", headers=AUTH, json={"risk_tier": tier})
            assert response.status_code == 200, response.text
        history = (await client.get("/api/trading/risk-tier/history")).json()
    assert [(kind, data["previous_tier"], data["new_tier"]) for kind, data in notifier.events] == [
        ("risk_tier_changed", "moderate", "aggressive"),
        ("risk_tier_changed", "aggressive", "conservative"),
    ]
    assert all("set by the owner" in data["reason"] for _, data in notifier.events)
    assert history["total"] == 2
    newest = history["items"][0]
    assert (newest["verdict"], newest["previous_tier"], newest["new_tier"]) == (
        "changed",
        "aggressive",
        "conservative",
    )
    assert "PUT /api/trading/config" in newest["reason"]
