"""Probes, Prometheus metrics, who may read, the token's origin, the lifespan that runs the
engine, and the dashboard mount (seed task 20.1, docs/contracts.md sections 2 and 7)."""

from __future__ import annotations

import asyncio
import stat
from datetime import date
from pathlib import Path

import httpx
import pytest

from services.shared.config import ConfigError
from services.trading import app as app_module
from services.trading.api.auth import TOKEN_FILE_NAME, resolve_token
from services.trading.api.runtime import EngineRunner
from services.trading.api.settings import ReadAccess
from services.trading.app import create_app
from services.trading.core.clock import SimulatedClock
from services.trading.live.engine import ENGINE_LOCK_KEY, TradingEngine
from services.trading.notifications.service import NotificationService
from tests.trading.api.conftest import AUTH, TOKEN, make_runtime, serve
from tests.trading.engine_harness import ORDER_SIGNER, at

pytestmark = pytest.mark.integration


async def _until_ready(client: httpx.AsyncClient, timeout: float = 60) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get("/ready")
        if response.json()["status"] == "ready" or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.05)


async def test_health_and_ready(api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    ready = await api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}, "detail": {}}


async def test_not_ready_while_a_migration_is_missing(api) -> None:
    await api.pool.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
    )
    ready = await api.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["migrations"] == "down"
    assert "not applied" in ready.json()["detail"]["migrations"]


async def test_the_lifespan_runs_the_engine_and_stops_it(pool, redis_client) -> None:
    clock = SimulatedClock(at(date(2024, 3, 2), 12))  # a Saturday: the loop ticks and does nothing
    engine = TradingEngine(pool, redis_client, clock, order_signer=ORDER_SIGNER)
    runtime = make_runtime(pool, redis_client, clock, engine=engine, run_engine=True)
    async for client in serve(runtime):
        ready = await _until_ready(client)
        assert ready.status_code == 200 and ready.json()["checks"]["engine"] == "ok"
        status = (await client.get("/api/trading/status")).json()
        assert (
            status["engine"]["runs_here"]
            and status["engine"]["loop_running"]
            and status["engine"]["holds_lock"]
        )
    assert not engine.started and not engine.holds_lock
    async with pool.acquire() as connection:  # released: another connection can take it
        assert await connection.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY)
        await connection.execute("SELECT pg_advisory_unlock($1)", ENGINE_LOCK_KEY)


async def test_not_ready_while_another_engine_holds_the_account(pool, redis_client) -> None:
    clock = SimulatedClock(at(date(2024, 3, 2), 12))
    first = TradingEngine(pool, redis_client, clock, order_signer=ORDER_SIGNER)
    await first.start()
    try:
        runtime = make_runtime(
            pool,
            redis_client,
            clock,
            engine=TradingEngine(pool, redis_client, clock, order_signer=ORDER_SIGNER),
            run_engine=True,
        )
        async for client in serve(runtime):
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["engine"] == "down"
            assert "lock" in ready.json()["detail"]["engine"]
            assert (await client.get("/health")).status_code == 200  # the server answers meanwhile
    finally:
        await first.stop()


async def test_prometheus_metrics(traded) -> None:
    api, _ = traded
    response = await api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'stonks_decisions_recorded{category="ticker",decision="skip"} 1.0' in text
    assert 'stonks_decisions_recorded{category="take_profit",decision="act"} 1.0' in text
    assert 'stonks_circuit_breaker_active{trigger="none"} 0.0' in text
    assert "stonks_engine_orders_sent_total" in text and "stonks_engine_loop_lag_seconds" in text
    assert "stonks_engine_tick_duration_seconds_bucket" in text and "stonks_engine_enabled 1.0" in text


@pytest.mark.parametrize(
    ("access", "api_host", "base_url", "protected"),
    [
        (ReadAccess.ALWAYS, "127.0.0.1", "http://127.0.0.1", True),
        (ReadAccess.NEVER, "0.0.0.0", "http://203.0.113.5", False),
        (ReadAccess.AUTO, "127.0.0.1", "http://127.0.0.1", False),
        (ReadAccess.AUTO, "127.0.0.1", "http://[::1]", False),
        (ReadAccess.AUTO, "0.0.0.0", "http://127.0.0.1", True),  # listening beyond loopback
        (ReadAccess.AUTO, "127.0.0.1", "http://10.0.0.7", True),  # arrived on another interface
    ],
)
async def test_who_may_read_without_the_token(
    pool, redis_client, access, api_host, base_url, protected
) -> None:
    runtime = make_runtime(
        pool, redis_client, SimulatedClock(at(date(2024, 3, 1), 10)), read_access=access, api_host=api_host
    )
    app = create_app(runtime, dashboard_dir=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        for path in ("/api/trading/status", "/api/trading/decisions", "/api/trading/config", "/metrics"):
            response = await client.get(path)
            assert response.status_code == (401 if protected else 200), (path, response.text)
            assert (await client.get(path, headers=AUTH)).status_code == 200
        for path in ("/health", "/ready", "/openapi.json"):
            assert (await client.get(path)).status_code == 200


def test_token_from_the_environment_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STONKS_API_TOKEN"):
        resolve_token("short", tmp_path / TOKEN_FILE_NAME)
    token = resolve_token(TOKEN, tmp_path / TOKEN_FILE_NAME)
    assert token.source == "environment" and token.matches(TOKEN) and not token.matches(TOKEN + "x")
    assert not (tmp_path / TOKEN_FILE_NAME).exists()


def test_a_generated_token_is_stored_0600_and_its_file_announced_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / TOKEN_FILE_NAME
    said: list[str] = []
    first = resolve_token(None, path, said.append)
    assert first.source == "generated" and len(said) == 1
    secret = path.read_text().strip()
    # Where it is kept, never the token itself: what is announced ends up in run logs.
    assert str(path) in said[0] and secret not in said[0]
    assert first.matches(secret) and len(secret) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = resolve_token(None, path, said.append)
    assert again.source == "file" and again.matches(secret) and len(said) == 1
    path.chmod(0o644)
    resolve_token(None, path, said.append)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("x\n")
    with pytest.raises(ConfigError, match="delete it"):
        resolve_token(None, path, said.append)


async def test_the_app_builds_its_runtime_from_the_environment(
    database_url, redis_url, tmp_path, monkeypatch, capsys
) -> None:
    """`uvicorn services.trading.app:app`: servers from the environment, schema upgraded, a token
    generated on first start, the engine run in the lifespan."""
    for name, value in {
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
        "STONKS_API_PROTECT_READS": "always",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STONKS_API_TOKEN", raising=False)
    monkeypatch.setattr(app_module, "configure_logging", lambda level: None)  # keep pytest's stderr
    app = create_app(dashboard_dir=None)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        assert (await _until_ready(client)).json()["checks"] == {
            "database": "ok",
            "migrations": "ok",
            "redis": "ok",
            "engine": "ok",
            "wake_up": "ok",
        }
        token = (tmp_path / TOKEN_FILE_NAME).read_text().strip()
        said = capsys.readouterr()
        assert str(tmp_path / TOKEN_FILE_NAME) in said.err and token not in said.err + said.out
        assert (await client.get("/api/trading/status")).status_code == 401
        status = await client.get("/api/trading/status", headers={"Authorization": f"Bearer {token}"})
        assert status.json()["engine"]["runs_here"] is True
        # The engine it runs alerts the owner through the real notification service (the
        # chart's deployment runs this path), the one the notification settings update.
        runtime = app.state.runtime
        assert isinstance(runtime.engine.notifier, NotificationService)
        assert runtime.notifications is runtime.engine.notifier


async def test_the_dashboard_is_served_at_the_root_and_the_api_wins(api, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>dashboard</html>")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "trading").mkdir()
    (tmp_path / "api" / "trading" / "status").write_text("a file shadowing the API")
    app = create_app(api.runtime, dashboard_dir=tmp_path)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        root = await client.get("/")
        assert root.status_code == 200 and "dashboard" in root.text
        assert (await client.get("/api/trading/status")).json()["risk_tier"] == "moderate"


async def test_a_dead_engine_loop_is_restarted_and_its_error_kept(pool, redis_client) -> None:
    """The app's engine (the chart's deployment) is supervised like `run`'s: a loop that dies
    starts again, and the failure stays readable for /ready and /status."""
    engine = TradingEngine(
        pool, redis_client, SimulatedClock(at(date(2024, 3, 1), 10)), order_signer=ORDER_SIGNER
    )
    real_run, runs = engine.run, []

    async def dies_once(stop: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the loop died")
        await real_run(stop)

    engine.run = dies_once
    runner = EngineRunner(engine)
    runner.start()
    try:
        for _ in range(200):
            if len(runs) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(runs) == 2 and runner.running
        assert runner.error == "RuntimeError: the loop died"
    finally:
        await runner.stop()
