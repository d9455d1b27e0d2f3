"""/ready covers every dependency the process uses (issue 12, defect 5): PostgreSQL, Redis, the
engine's lock and loop, its LISTEN wake-up (degraded, not down, when only it is missing), and
the paper broker's loop when it runs here. Real servers; Redis is a Valkey of the test's own,
stopped and started again under the running app."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.config import AppConfig
from services.shared.embedded import EmbeddedValkey
from services.trading.api.readiness import STALL_GRACE_SECONDS, Check, loop_check, verdict
from services.trading.api.runtime import attached_runtime
from services.trading.api.settings import ApiSettings, ReadAccess
from services.trading.core.clock import SimulatedClock
from services.trading.live.engine import TradingEngine
from services.trading.live.main_job import RuntimeParts
from tests.trading.api.conftest import TOKEN, make_runtime, serve
from tests.trading.engine_harness import ORDER_SIGNER, at

SATURDAY = at(date(2024, 3, 2), 12)  # the loop ticks and does nothing


async def _until_status(client: httpx.AsyncClient, status: str, timeout: float = 30) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get("/ready")
        if response.json()["status"] == status or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_not_ready_naming_redis_while_redis_is_down(pool, tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path)
    redis = aioredis.from_url(valkey.ensure_running())
    try:
        engine = TradingEngine(pool, redis, SimulatedClock(SATURDAY), order_signer=ORDER_SIGNER)
        async for client in serve(
            make_runtime(pool, redis, SimulatedClock(SATURDAY), engine=engine, run_engine=True)
        ):
            ready = await _until_status(client, "ready")
            assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
            await asyncio.to_thread(valkey.stop)
            down = await client.get("/ready")
            assert down.status_code == 503 and down.json()["status"] == "not_ready"
            assert down.json()["checks"] == {
                "database": "ok",
                "migrations": "ok",
                "redis": "down",
                "engine": "ok",
                "wake_up": "ok",
            }
            assert down.json()["detail"]["redis"]  # says why
            assert (await client.get("/health")).status_code == 200  # liveness only: the process answers
            await asyncio.to_thread(valkey.ensure_running)
            back = await _until_status(client, "ready")
            assert back.status_code == 200 and back.json()["checks"]["redis"] == "ok"
            assert back.json()["detail"] == {}
    finally:
        await redis.aclose()
        await asyncio.to_thread(valkey.stop)


@pytest.mark.integration
async def test_degraded_but_ready_while_only_the_wake_up_is_missing(pool, redis_client) -> None:
    engine = TradingEngine(pool, redis_client, SimulatedClock(SATURDAY), order_signer=ORDER_SIGNER)
    async for client in serve(
        make_runtime(pool, redis_client, SimulatedClock(SATURDAY), engine=engine, run_engine=True)
    ):
        assert (await _until_status(client, "ready")).json()["checks"]["wake_up"] == "ok"
        # As between losing the LISTEN connection and listening again: the loop runs on, polling.
        await engine.wake_up.close()
        degraded = await client.get("/ready")
        assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
        checks = degraded.json()["checks"]
        assert checks.pop("wake_up") == "degraded" and set(checks.values()) == {"ok"}
        assert "wait for the next poll (every 30 s)" in degraded.json()["detail"]["wake_up"]


@pytest.mark.integration
async def test_the_run_jobs_engine_and_paper_broker_are_checked(pool, redis_client, tmp_path: Path) -> None:
    """`stonks run`: the job runs the engine and the paper broker beside the API (which starts
    neither); /ready checks both loops as well as the servers."""
    clock = SimulatedClock(SATURDAY)
    engine = TradingEngine(pool, redis_client, clock, order_signer=ORDER_SIGNER)
    broker = PaperBroker.on_redis(
        pool, redis_client, clock, PaperBrokerSettings(starting_cash=Decimal(1000)), order_signer=ORDER_SIGNER
    )
    await engine.start()
    await broker.start()
    engine_stop, broker_stop = asyncio.Event(), asyncio.Event()
    loops = []
    try:
        # As the job builds it: RuntimeParts (main_job.run_live) through attached_runtime (cli).
        parts = RuntimeParts(
            pool, redis_client, clock, engine, engine_loop_in_process=True, paper_broker_loop=broker.heartbeat
        )
        runtime = attached_runtime(
            AppConfig(api_token=TOKEN, data_dir=tmp_path), parts, ApiSettings(protect_reads=ReadAccess.NEVER)
        )
        async for client in serve(runtime):
            not_yet = await client.get("/ready")
            assert not_yet.status_code == 503
            assert not_yet.json()["detail"] == {
                "engine": "the engine loop is not running",
                "paper_broker": "the paper broker loop is not running",
                "wake_up": "not listening yet; new recommendations wait for the next poll (every 30 s)",
            }
            loops = [
                asyncio.create_task(engine.run(engine_stop)),
                asyncio.create_task(broker.run(broker_stop)),
            ]
            ready = await _until_status(client, "ready")
            assert ready.status_code == 200 and ready.json()["checks"] == {
                "database": "ok",
                "migrations": "ok",
                "redis": "ok",
                "engine": "ok",
                "wake_up": "ok",
                "paper_broker": "ok",
            }
            broker_stop.set()
            await asyncio.wait_for(loops[1], 5)
            stopped = await client.get("/ready")
            assert stopped.status_code == 503 and stopped.json()["checks"]["paper_broker"] == "down"
    finally:
        engine_stop.set()
        broker_stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await engine.stop()


def test_a_loop_silent_past_its_longest_wait_and_the_grace_is_stuck() -> None:
    assert loop_check("engine", None, 30) == Check("down", "the engine loop is not running")
    assert loop_check("engine", 30 + STALL_GRACE_SECONDS, 30).state == "ok"
    stuck = loop_check("engine", 31 + STALL_GRACE_SECONDS, 30)
    assert stuck.state == "down" and "has not finished a pass for 151 s" in stuck.detail


def test_any_check_down_is_not_ready_and_degraded_is_still_ready() -> None:
    ok, slow, down = Check("ok"), Check("degraded", "slower"), Check("down", "gone")
    assert verdict({"a": ok, "b": ok}).status == "ready"
    assert verdict({"a": ok, "b": slow}).status == "degraded"
    both = verdict({"a": down, "b": slow})
    assert both.status == "not_ready" and both.checks == {"a": "down", "b": "degraded"}
    assert both.detail == {"a": "gone", "b": "slower"}
