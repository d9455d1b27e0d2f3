"""Backtests run in the background through the API (seed tasks 19.1, 20.1), and the notification
settings and history endpoints (seed tasks 16, 20.1)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from services.shared.config import TradingConfig
from services.trading.api.jobs import BacktestJobs, TooManyBacktests
from services.trading.backtest import BacktestConfig
from services.trading.backtest.run_store import create_backtest_run
from services.trading.core.clock import SimulatedClock
from tests.trading.api.conftest import AUTH, make_runtime, serve
from tests.trading.engine_harness import at

pytestmark = pytest.mark.integration


async def _wait_finished(client, url: str, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await client.get(url)).json()
        if body["status"] != "running" or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_a_backtest_runs_in_the_background_and_reports_its_results(traded) -> None:
    api, history = traded
    response = await api.client.post(
        "/api/trading/backtest",
        headers=AUTH,
        json={
            "start_date": history.days[15].isoformat(),
            "end_date": history.exit_day.isoformat(),
            "initial_capital": "10000",
            "signals": "momentum",
        },
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "running" and accepted["result_url"].endswith(accepted["backtest_id"])
    body = await _wait_finished(api.client, accepted["result_url"])
    assert body["status"] == "completed", body["error_message"]
    assert body["progress"] == 1.0 and body["final_value"] is not None and body["trade_count"] is not None
    assert body["equity_curve"] and body["config"]["signals"] == "momentum"
    listed = (await api.client.get("/api/trading/backtest", params={"status": "completed"})).json()
    assert [b["id"] for b in listed["items"]] == [accepted["backtest_id"]]
    assert "trades" not in listed["items"][0]


async def test_a_backtest_that_cannot_load_data_ends_failed_with_the_reason(api) -> None:
    response = await api.client.post(
        "/api/trading/backtest",
        headers=AUTH,
        json={
            "start_date": "2024-01-02",
            "end_date": "2024-02-01",
            "initial_capital": 5000,
            "tickers": ["ZZZ"],
        },
    )
    assert response.status_code == 202
    body = await _wait_finished(api.client, response.json()["result_url"])
    assert body["status"] == "failed" and "ZZZ" in body["error_message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start_date": "2024-02-01", "end_date": "2024-01-02", "initial_capital": 1}, "end_date"),
        ({"start_date": "1990-01-02", "end_date": "2024-01-02", "initial_capital": 1}, "start_date"),
        ({"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 0}, "initial_capital"),
        (
            {"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 1, "signals": "csv"},
            "signals",
        ),
        (
            {
                "start_date": "2024-01-02",
                "end_date": "2024-02-01",
                "initial_capital": 1,
                "csv_path": "/etc/passwd",
            },
            "csv_path",
        ),
        ({"end_date": "2024-02-01", "initial_capital": 1}, "start_date"),
    ],
)
async def test_a_bad_backtest_request_is_422_naming_the_field_and_starts_nothing(api, body, field) -> None:
    response = await api.client.post("/api/trading/backtest", headers=AUTH, json=body)
    assert response.status_code == 422
    assert any(e["loc"][:2] == ["body", field] for e in response.json()["detail"]), response.json()
    assert await api.pool.fetchval("SELECT count(*) FROM backtest_runs") == 0


async def test_unknown_backtest_is_404_and_a_bad_id_422(api) -> None:
    missing = await api.client.get("/api/trading/backtest/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert (await api.client.get("/api/trading/backtest/not-a-uuid")).status_code == 422


async def test_backtests_beyond_the_limit_are_429_and_an_interrupted_one_is_marked_failed(
    pool, redis_client
) -> None:
    runtime = make_runtime(
        pool, redis_client, SimulatedClock(at(date(2024, 3, 1), 10)), backtests=BacktestJobs(limit=1)
    )
    body = {"start_date": "2024-01-02", "end_date": "2024-02-01", "initial_capital": 100}
    async for client in serve(runtime):
        # A run that holds the only slot until the app stops.
        backtest_id = await create_backtest_run(pool, BacktestConfig.parse(**body))
        runtime.backtests.start(backtest_id, asyncio.Event().wait())
        refused = await client.post("/api/trading/backtest", headers=AUTH, json=body)
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert await pool.fetchval("SELECT count(*) FROM backtest_runs") == 1
    # The app stopped with the job unfinished: its run must not stay "running" forever.
    row = await pool.fetchrow("SELECT status, error_message FROM backtest_runs WHERE id = $1", backtest_id)
    assert row["status"] == "failed" and "stopped" in row["error_message"]


async def test_a_job_whose_run_is_over_but_still_tidying_is_waited_for_not_counted() -> None:
    """The e2e launched a walk-forward right after a search the page showed completed, and got
    429 while the search's Ray was still shutting down."""
    jobs = BacktestJobs(limit=1, what="optimization")
    over: set[UUID] = set()
    tidying, working = uuid4(), uuid4()
    jobs.start(tidying, asyncio.sleep(0.3))
    over.add(tidying)

    async def finished(job_id: UUID) -> bool:
        return job_id in over

    await jobs.reserve_after_tidying(finished, wait_seconds=5)
    assert jobs.running == 0

    jobs.start(working, asyncio.sleep(5))
    with pytest.raises(TooManyBacktests, match="at most 1"):
        await jobs.reserve_after_tidying(finished, wait_seconds=5)
    assert jobs.running == 1, "a job still at work is not waited for"
    await jobs.stop(lambda *_: asyncio.sleep(0))


async def test_notification_settings_change_is_merged_validated_saved_and_audited(api) -> None:
    response = await api.client.put(
        "/api/trading/notifications/config",
        headers=AUTH,
        json={"email_enabled": True, "email_recipients": ["owner@example.com"], "sms_rate_limit_per_hour": 3},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email_enabled"] is True and body["sms_rate_limit_per_hour"] == 3
    assert body["email_rate_limit_per_hour"] == 20  # kept
    assert (await api.client.get("/api/trading/notifications/config")).json() == body
    audit = await api.pool.fetchrow("SELECT * FROM trading_config_audit ORDER BY id DESC LIMIT 1")
    assert audit["previous_config"]["email_enabled"] is False and audit["new_config"]["email_enabled"] is True
    assert "notifications/config" in audit["change_source"]


async def test_recipients_from_the_environment_let_a_channel_be_switched_on_and_stay_unsaved(
    pool, redis_client
) -> None:
    """A deployment that set its phone number and address in the environment (seed task 1.4):
    the dashboard sends only the switch, the switch is accepted, and the recipients keep
    coming from the environment instead of being copied into the database."""
    trading = TradingConfig(sns_phone_number="+15551234567", gmail_recipient="owner@example.com")
    runtime = make_runtime(pool, redis_client, SimulatedClock(at(date(2024, 3, 1), 10)), trading=trading)
    async for client in serve(runtime):
        response = await client.put(
            "/api/trading/notifications/config",
            headers=AUTH,
            json={"sms_enabled": True, "email_enabled": True},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["sms_enabled"] and body["sms_phone_number"] == "+15551234567"
        assert body["email_enabled"] and body["email_recipients"] == ["owner@example.com"]
    stored = await pool.fetchrow(
        "SELECT sms_enabled, sms_phone_number, email_recipients FROM trading_engine_config"
    )
    assert (
        stored["sms_enabled"] is True
        and stored["sms_phone_number"] is None
        and not stored["email_recipients"]
    )


async def test_an_sns_topic_can_be_saved(api) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:stonks-alerts"
    response = await api.client.put(
        "/api/trading/notifications/config", headers=AUTH, json={"sms_enabled": True, "sns_topic_arn": topic}
    )
    assert response.status_code == 200 and response.json()["sns_topic_arn"] == topic


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sms_enabled": True}, "sms_enabled"),  # enabled with nowhere to send
        ({"sms_phone_number": "555-1234"}, "sms_phone_number"),
        ({"email_recipients": ["not an address"]}, "email_recipients"),
        ({"sms_rate_limit_per_hour": -1}, "sms_rate_limit_per_hour"),
        ({"pager_enabled": True}, "pager_enabled"),
    ],
)
async def test_bad_notification_settings_are_422_by_field_and_change_nothing(api, body, field) -> None:
    before = dict(await api.pool.fetchrow("SELECT * FROM trading_engine_config"))
    response = await api.client.put("/api/trading/notifications/config", headers=AUTH, json=body)
    assert response.status_code == 422
    assert any(e["loc"][:2] == ["body", field] for e in response.json()["detail"]), response.json()
    assert dict(await api.pool.fetchrow("SELECT * FROM trading_engine_config")) == before
    assert await api.pool.fetchval("SELECT count(*) FROM trading_config_audit") == 0


async def test_notification_history_newest_first_with_filters_and_pages(api) -> None:
    rows = [
        ("sms", "daily_summary", "delivered", 1),
        ("email", "daily_summary", "failed", 2),
        ("email", "risk_tier_changed", "delivered", 3),
    ]
    for channel, event, status, minute in rows:
        await api.pool.execute(
            """INSERT INTO notifications (channel, event_type, message, delivery_status, created_at)
               VALUES ($1, $2, 'm', $3, $4)""",
            channel,
            event,
            status,
            datetime(2024, 3, 1, 15, minute, tzinfo=UTC),
        )
    body = (await api.client.get("/api/trading/notifications/history")).json()
    assert body["total"] == 3 and body["items"][0]["event_type"] == "risk_tier_changed"
    by_channel = (
        await api.client.get("/api/trading/notifications/history", params={"channel": "email"})
    ).json()
    assert by_channel["total"] == 2
    failed = (await api.client.get("/api/trading/notifications/history", params={"status": "failed"})).json()
    assert [n["channel"] for n in failed["items"]] == ["email"]
    event = (
        await api.client.get(
            "/api/trading/notifications/history",
            params={"event_type": "daily_summary", "limit": 1, "offset": 1},
        )
    ).json()
    assert event["total"] == 2 and [n["channel"] for n in event["items"]] == ["sms"]
    bad = await api.client.get("/api/trading/notifications/history", params={"channel": "pigeon"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "channel"]
