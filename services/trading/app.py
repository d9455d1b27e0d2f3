"""The trading engine's HTTP service (seed task 20.1, docs/contracts.md section 7): the control plane API,
health probes, Prometheus metrics and the built dashboard.

    create_app(runtime)   serve a Runtime its caller built (tests, the demo: the caller owns
                          the servers and drives the engine unless runtime.run_engine)
    create_app()          build the Runtime at start-up from the environment and run the
                          engine loop here (`uvicorn services.trading.app:app`)

Creating the app does no I/O: everything that connects happens in the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.shared.config import load_config
from services.shared.logging import configure_logging
from services.trading.api.errors import invalid_input, unreadable_body
from services.trading.api.guard import RequestGuard
from services.trading.api.routes import (
    backtest,
    breaker,
    config,
    control,
    decisions,
    metrics,
    notifications,
    optimizations,
    positions,
    probes,
    prometheus,
    reconciliation,
    risk_tier,
    status,
    tax_report,
    tearsheet,
    trades,
)
from services.trading.api.runtime import EngineRunner, Runtime, close_runtime, open_runtime
from services.trading.api.settings import load_api_settings
from services.trading.backtest import run_store
from services.trading.optimize import store as optimization_store

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "frontend" / "dist"
ROUTERS = (
    probes,
    prometheus,
    status,
    positions,
    config,
    control,
    breaker,
    decisions,
    trades,
    metrics,
    risk_tier,
    backtest,
    optimizations,
    notifications,
    tax_report,
    tearsheet,
    reconciliation,
)

DESCRIPTION = """Control plane of the autonomous trading engine.

Every endpoint that changes state (PUT config, POST pause/resume, POST backtest, POST optimizations, PUT notification
config) needs `Authorization: Bearer <token>`: `STONKS_API_TOKEN`, or the token generated on first
start and kept in `<STONKS_DATA_DIR>/api-token`. Reads need it too unless the server listens on
loopback only (`STONKS_API_PROTECT_READS`: auto, always, never). A wrong or missing token answers
401 and changes nothing, before the body is read; invalid input answers 422 naming the field and
the reason; a body over 64 KiB answers 413, and a `Host` the server does not answer to
(`STONKS_API_ALLOWED_HOSTS`) 400.

Money, prices and quantities are decimal strings; statistics are numbers (null when not finite;
an infinite profit factor is null with `profit_factor_infinite: true`).
"""


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"database or queue unavailable: {type(exc).__name__}"}, status_code=503)


def create_app(runtime: Runtime | None = None, *, dashboard_dir: Path | None = DASHBOARD_DIR) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = runtime
        if current is None:
            settings = load_config()
            if (
                not structlog.is_configured()
            ):  # `uvicorn services.trading.app:app`; the CLI configures its own
                configure_logging(settings.log_level)
            current = await open_runtime(settings, load_api_settings())
        app.state.runtime = current
        # Runs left `running` by a process that stopped (their lock is free) are interrupted.
        await optimization_store.mark_orphaned_runs(current.pool)
        runner = EngineRunner(current.engine) if current.run_engine and current.engine is not None else None
        app.state.engine_runner = runner
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            await current.backtests.stop(
                lambda backtest_id, error: run_store.mark_backtest_interrupted(
                    current.pool, backtest_id, error
                )
            )
            await current.optimizations.stop(
                lambda run_id, error: optimization_store.stop_run(current.pool, run_id, "interrupted", error)
            )
            if runner is not None:
                await runner.stop()
            await close_runtime(current)

    app = FastAPI(
        title="stonks-oracle trading engine", description=DESCRIPTION, version="0.1.0", lifespan=lifespan
    )
    # A runtime handed in serves requests at once, lifespan or not (httpx's ASGITransport runs none).
    app.state.runtime = runtime
    app.state.engine_runner = None
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_exception_handler(StarletteHTTPException, unreadable_body)
    app.add_exception_handler(RequestValidationError, invalid_input)
    for error in (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, TimeoutError):
        app.add_exception_handler(error, _database_unavailable)
    app.add_middleware(RequestGuard)
    if dashboard_dir is not None and dashboard_dir.is_dir():
        # Mounted last, so every API route wins over a file of the same path.
        app.mount("/", StaticFiles(directory=dashboard_dir, html=True), name="dashboard")
    return app


app = create_app()
