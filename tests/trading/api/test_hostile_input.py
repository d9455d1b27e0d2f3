"""Hostile input to the API (issue 12, defect 8): each of these once answered 500 or was stored
wrong. Every one must be a 422 naming the field and the reason, and change nothing."""

from __future__ import annotations

import json

import pytest
from fastapi.routing import APIRoute

from services.trading.api.inputs import ExactJsonRoute
from services.trading.app import ROUTERS
from tests.trading.api.conftest import AUTH

pytestmark = pytest.mark.integration

CONFIG = "/api/trading/config"
NOTIFICATIONS = "/api/trading/notifications/config"
BACKTEST = "/api/trading/backtest"
TWENTY_THOUSAND_DIGITS = "9" * 20_000

# (path, raw JSON body, the field the 422 must name)
BODIES = [
    (CONFIG, '{"reserve_siphon_pct": NaN}', "reserve_siphon_pct"),
    (CONFIG, '{"max_open_positions": NaN}', "max_open_positions"),
    (CONFIG, '{"daily_loss_limit_pct": -Infinity}', "daily_loss_limit_pct"),
    (CONFIG, '{"gradual_entry_tranches": Infinity}', "gradual_entry_tranches"),
    (CONFIG, '{"absolute_position_cap": 1e400}', "absolute_position_cap"),
    (CONFIG, '{"max_open_positions": 1e400}', "max_open_positions"),
    (CONFIG, '{"max_open_positions": true}', "max_open_positions"),
    (CONFIG, '{"volatility_stop_count": false}', "volatility_stop_count"),
    (CONFIG, '{"enabled": 1}', "enabled"),
    (CONFIG, '{"paused": "yes"}', "paused"),
    (CONFIG, '{"risk_tier_overrides": {"moderate": {"min_confidence": NaN}}}', "risk_tier_overrides"),
    (CONFIG, f'{{"max_open_positions": {TWENTY_THOUSAND_DIGITS}}}', "max_open_positions"),
    (NOTIFICATIONS, '{"large_trade_pnl_threshold": NaN}', "large_trade_pnl_threshold"),
    (NOTIFICATIONS, '{"large_trade_pnl_threshold": -Infinity}', "large_trade_pnl_threshold"),
    (NOTIFICATIONS, '{"large_trade_pnl_threshold": 1e400}', "large_trade_pnl_threshold"),
    (NOTIFICATIONS, '{"large_trade_pnl_threshold": "1e200000"}', "large_trade_pnl_threshold"),
    (
        NOTIFICATIONS,
        f'{{"large_trade_pnl_threshold": "{TWENTY_THOUSAND_DIGITS}"}}',
        "large_trade_pnl_threshold",
    ),
    (
        NOTIFICATIONS,
        f'{{"large_trade_pnl_threshold": "0.{TWENTY_THOUSAND_DIGITS}"}}',
        "large_trade_pnl_threshold",
    ),
    (
        NOTIFICATIONS,
        f'{{"large_trade_pnl_threshold": {TWENTY_THOUSAND_DIGITS}}}',
        "large_trade_pnl_threshold",
    ),
    (
        NOTIFICATIONS,
        f'{{"large_trade_pnl_threshold": 0.{TWENTY_THOUSAND_DIGITS}}}',
        "large_trade_pnl_threshold",
    ),
    (NOTIFICATIONS, '{"sms_rate_limit_per_hour": true}', "sms_rate_limit_per_hour"),
    (NOTIFICATIONS, '{"weekly_digest_weekday": NaN}', "weekly_digest_weekday"),
    (NOTIFICATIONS, '{"webhook_enabled": 1}', "webhook_enabled"),
    (
        BACKTEST,
        '{"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": NaN}',
        "initial_capital",
    ),
    (
        BACKTEST,
        '{"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 1e400}',
        "initial_capital",
    ),
    (
        BACKTEST,
        (
            '{"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 1000, '
            '"tranche_spacing_sessions": true}'
        ),
        "tranche_spacing_sessions",
    ),
    (
        BACKTEST,
        '{"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 1000, "fill_timing": "sometimes"}',
        "fill_timing",
    ),
]


async def _stored(pool) -> tuple:
    config = dict(await pool.fetchrow("SELECT * FROM trading_engine_config"))
    audits = await pool.fetchval("SELECT count(*) FROM trading_config_audit")
    runs = await pool.fetchval("SELECT count(*) FROM backtest_runs")
    return config, audits, runs


def _named(response) -> set[str]:
    return {str(part) for error in response.json()["detail"] for part in error["loc"][1:]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    BODIES,
    ids=[f"{p.removeprefix('/api/trading/')}:{b[:50]}" for p, b, _ in BODIES],
)
async def test_hostile_numbers_are_refused_naming_the_field(api, path: str, body: str, field: str) -> None:
    before = await _stored(api.pool)
    method = "POST" if path == BACKTEST else "PUT"
    response = await api.client.request(
        method, path, content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text[:500]
    assert field in _named(response), response.text[:500]
    assert all(error["msg"] for error in response.json()["detail"])
    assert len(response.content) < 5_000  # the refusal does not echo 20,000 digits back
    assert await _stored(api.pool) == before


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("path", ["/api/trading/decisions", "/api/trading/trades"])
async def test_an_instant_beyond_the_calendar_in_utc_is_refused_naming_it(api, path: str, since: str) -> None:
    for name in ("since", "until"):
        response = await api.client.get(path, params={name: since}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert name in _named(response)


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/api/trading/decisions", "since", "-5.960464477539063e-08"),
        ("/api/trading/trades", "until", "1700000000"),
        ("/api/trading/metrics/history", "since", "5.460670810235269e-33"),
    ],
)
async def test_a_number_is_not_read_as_a_unix_time(api, path: str, name: str, value: str) -> None:
    response = await api.client.get(path, params={name: value}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert name in _named(response)


async def test_a_backtest_date_is_iso_8601_not_a_unix_time(api) -> None:
    response = await api.client.post(
        BACKTEST,
        headers=AUTH,
        json={"start_date": "1704153600", "end_date": "2024-02-01", "initial_capital": 1000},
    )  # 2024-01-02 00:00 UTC
    assert response.status_code == 422
    assert "start_date" in _named(response)


async def test_a_true_sent_as_a_count_is_not_stored_as_one(api) -> None:
    response = await api.client.put(CONFIG, headers=AUTH, json={"max_open_positions": True})
    assert response.status_code == 422
    row = await api.pool.fetchrow("SELECT max_open_positions FROM trading_engine_config")
    assert row["max_open_positions"] == 10


async def test_a_huge_threshold_is_not_stored_as_zero(api) -> None:
    response = await api.client.put(
        NOTIFICATIONS, headers=AUTH, json={"large_trade_pnl_threshold": "1e200000"}
    )
    assert response.status_code == 422
    stored = await api.pool.fetchval("SELECT large_trade_pnl_threshold FROM trading_engine_config")
    assert stored == 100


async def test_numbers_in_range_still_pass_exactly(api) -> None:
    body = json.dumps({"large_trade_pnl_threshold": 250.125, "sms_rate_limit_per_hour": 7})
    response = await api.client.put(
        NOTIFICATIONS, content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["large_trade_pnl_threshold"] == "250.125"
    stored = await api.pool.fetchval("SELECT large_trade_pnl_threshold FROM trading_engine_config")
    assert str(stored) == "250.125"


def test_every_route_that_takes_a_body_parses_it_exactly() -> None:
    with_body = [
        route
        for module in ROUTERS
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.body_field is not None
    ]
    assert {route.path for route in with_body} >= {CONFIG, NOTIFICATIONS, BACKTEST}
    assert all(isinstance(route, ExactJsonRoute) for route in with_body)


@pytest.mark.parametrize("body", ["2.549251864815616e-138", "0", "[]", '"x"', "null"])
@pytest.mark.parametrize("path", [CONFIG, NOTIFICATIONS, BACKTEST])
async def test_a_body_that_is_not_an_object_is_refused(api, path: str, body: str) -> None:
    """Found by schemathesis: a number too small to store, sent as the whole body, was read by
    FastAPI as no body and answered 200."""
    before = await _stored(api.pool)
    method = "POST" if path == BACKTEST else "PUT"
    response = await api.client.request(
        method, path, content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text[:500]
    assert await _stored(api.pool) == before
