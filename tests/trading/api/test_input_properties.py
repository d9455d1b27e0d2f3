"""Generated bodies for the two settings endpoints (issue 12, defect 8), hostile values mixed
with plausible ones, sent as raw JSON (so NaN, Infinity, 1e400 and 5,000-digit numbers appear):

- no answer is a server error: each is 200, or 422 naming a field that was sent (or the body);
- a 422 changes nothing;
- a 200 stores exactly what was sent: every field read back equals the value the JSON text
  denotes (a number is its exact decimal value; `true` is not 1, `1` is not true).

The oracle is JSON's own meaning of the text sent, not the models under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared.db import create_pool
from services.trading.app import create_app
from services.trading.core.clock import SimulatedClock
from tests.trading.api.conftest import AUTH, make_runtime
from tests.trading.engine_harness import close_pool

pytestmark = pytest.mark.integration

CONFIG = "/api/trading/config"
NOTIFICATIONS = "/api/trading/notifications/config"
RESET = """
TRUNCATE trading_config_audit;
DELETE FROM trading_engine_config;
INSERT INTO trading_engine_config (id) VALUES (1);
"""
LONG = "9" * 5000

# JSON texts no field should take, or should take only for what they exactly are.
HOSTILE = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e-400",
        "true",
        "false",
        "null",
        '""',
        "[]",
        "{}",
        '"1e200000"',
        '"-1e200000"',
        '"NaN"',
        '"Infinity"',
        '"0x10"',
        '" 5"',
        '"5_000"',
        "-0",
        "0.0",
        "1.0",
        "5e0",
        LONG,
        f'"{LONG}"',
        f"0.{LONG}",
        f'"0.{LONG}"',
        f'"0.5{"0" * 5000}"',
        '"1e-30"',
    ]
)


def _number_texts(low: int, high: int, places: int) -> st.SearchStrategy[str]:
    exact = st.decimals(low, high, places=places, allow_nan=False, allow_infinity=False)
    as_number = exact.map(lambda d: format(d, "f"))
    return st.one_of(as_number, as_number.map(json.dumps), st.integers(low, high).map(str))


def _texts(kind: str) -> st.SearchStrategy[str]:
    plausible = {
        "int": st.integers(-5, 1200).map(str),
        "bool": st.sampled_from(["true", "false", "1", "0", '"true"', '"yes"']),
        "fraction": _number_texts(-1, 2, 6),
        "decimal": _number_texts(-100, 10**7, 4),
        "tier": st.sampled_from(['"conservative"', '"moderate"', '"aggressive"', '"reckless"', '"MODERATE"']),
        "time": st.sampled_from(['"16:30"', '"09:05:07"', '"24:00"', '"7:5"', '"16:30+02:00"', "3600"]),
        "phone": st.sampled_from(['"+15551234567"', '"+4915112345678"', '"12345"', "null"]),
        "emails": st.sampled_from(
            [
                '["owner@example.com"]',
                '["a@example.com", "b@example.org"]',
                "[]",
                '["not-an-address"]',
                '"owner@example.com"',
            ]
        ),
        "events": st.lists(
            st.sampled_from(
                ["daily_summary", "weekly_digest", "large_trade_pnl", "circuit_breaker_triggered", "bogus"]
            ),
            unique=True,
            max_size=4,
        ).map(json.dumps),
    }[kind]
    return st.one_of(plausible, plausible, HOSTILE)


CONFIG_FIELDS = {
    "enabled": "bool",
    "paused": "bool",
    "fractional_shares": "bool",
    "micro_trading_enabled": "bool",
    "risk_tier": "tier",
    "max_open_positions": "int",
    "gradual_entry_tranches": "int",
    "volatility_halt_minutes": "int",
    "earnings_reduce_sessions": "int",
    "earnings_reject_sessions": "int",
    "micro_trading_max_daily": "int",
    "risk_tier_min_trades": "int",
    "risk_tier_min_sessions": "int",
    "risk_tier_recovery_sessions": "int",
    "reserve_siphon_pct": "fraction",
    "daily_loss_limit_pct": "fraction",
    "correlation_reduce_threshold": "fraction",
    "correlation_reject_threshold": "fraction",
    "absolute_position_cap": "decimal",
    "active_pool_minimum": "decimal",
    "polling_interval_seconds": "decimal",
    "ticker_cooldown_hours": "decimal",
}
NOTIFICATION_FIELDS = {
    "sms_enabled": "bool",
    "email_enabled": "bool",
    "webhook_enabled": "bool",
    "telegram_enabled": "bool",
    "sms_rate_limit_per_hour": "int",
    "telegram_rate_limit_per_hour": "int",
    "email_rate_limit_per_hour": "int",
    "weekly_digest_weekday": "int",
    "large_trade_pnl_threshold": "decimal",
    "daily_summary_time": "time",
    "weekly_digest_time": "time",
    "sms_phone_number": "phone",
    "email_recipients": "emails",
    "notification_event_types": "events",
}


@st.composite
def bodies(draw, fields: dict[str, str]) -> str:
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4, unique=True))
    members = [f"{json.dumps(name)}: {draw(_texts(fields[name]))}" for name in names]
    if fields is CONFIG_FIELDS and draw(st.integers(0, 4)) == 0:
        members.append(
            f'"risk_tier_overrides": {{"moderate": {{"min_confidence": {draw(_texts("fraction"))}}}}}'
        )
    return "{" + ", ".join(members) + "}"


def _meaning(body: str) -> dict[str, Any]:
    """What the JSON text says: numbers as exact decimals (ints as ints), or a non-finite float."""
    return json.loads(
        body, parse_float=Decimal, parse_int=lambda text: int(text) if len(text) < 4000 else None
    )


def _same_number(stored: Any, sent: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return False
    try:
        return Decimal(str(stored)) == Decimal(str(sent))
    except ArithmeticError:
        return False


def _wall_time(text: str) -> time:
    return time.fromisoformat(text)


def _same(kind: str, stored: Any, sent: Any) -> bool:
    if kind == "bool":
        return isinstance(sent, bool) and stored is sent
    if kind == "int":
        return type(sent) is int and type(stored) is int and stored == sent
    if kind in ("fraction", "decimal"):
        return isinstance(sent, (int, Decimal, str)) and _same_number(stored, sent)
    if kind == "time":
        return isinstance(sent, str) and _wall_time(stored) == _wall_time(sent)
    if kind == "emails":
        return isinstance(sent, list) and stored == list(dict.fromkeys(s.strip() for s in sent))
    if kind == "events":
        return isinstance(sent, list) and set(stored) == set(sent) and len(stored) == len(sent)
    return stored == sent


@asynccontextmanager
async def _api(database_url: str, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    pool = await create_pool(database_url, max_size=4)
    redis = aioredis.from_url(redis_url)
    try:
        await pool.execute(RESET)
        app = create_app(
            make_runtime(pool, redis, SimulatedClock(datetime(2024, 3, 1, 15, tzinfo=UTC))),
            dashboard_dir=None,
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as client:
            yield client, pool
    finally:
        await redis.aclose()
        await close_pool(pool)


async def _send_and_check(client: httpx.AsyncClient, path: str, fields: dict[str, str], body: str) -> None:
    before = (await client.get(path, headers=AUTH)).json()
    response = await client.put(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (200, 422), (body[:300], response.status_code, response.text[:300])
    after = (await client.get(path, headers=AUTH)).json()
    sent = _meaning(body)
    if response.status_code == 422:
        named = {error["loc"][1] if len(error["loc"]) > 1 else "body" for error in response.json()["detail"]}
        assert named & ({*sent, "body"}), (body[:300], response.text[:300])
        assert after == before, body[:300]
        return
    view = after["config"] if path == CONFIG and "config" in after else after
    for name, value in sent.items():
        if name == "risk_tier_overrides":
            stored = view["risk_tier_overrides"]["moderate"]["min_confidence"]
            assert _same_number(stored, value["moderate"]["min_confidence"]), (body[:300], stored)
            continue
        assert _same(fields[name], view[name], value), (body[:300], name, view[name])


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    config=st.lists(bodies(CONFIG_FIELDS), min_size=1, max_size=4),
    notifications=st.lists(bodies(NOTIFICATION_FIELDS), min_size=1, max_size=4),
)
def test_settings_bodies_never_fail_the_server_and_what_is_accepted_is_stored_exactly(
    database_url, redis_url, config, notifications
) -> None:
    async def scenario() -> None:
        async with _api(database_url, redis_url) as (client, _):
            for body in config:
                await _send_and_check(client, CONFIG, CONFIG_FIELDS, body)
            for body in notifications:
                await _send_and_check(client, NOTIFICATIONS, NOTIFICATION_FIELDS, body)

    asyncio.run(scenario())
