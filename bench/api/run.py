"""API throughput (issue 6, docs/contracts.md section 8): requests per second and latency percentiles of the
dashboard's read endpoints, served by uvicorn in its own process, loaded from another process
on loopback.

Data: a database of its own (`stonks_bench_api`, rebuilt on every run) with the real sample
market, its momentum recommendations, and the engine's own history from replaying a stretch of
sessions through the live stack (decisions, fills, trades, snapshots), like the demo, plus copies
of its decisions up to a table of a live account's size (`--extra-decisions`, 20,000).

Server: `uvicorn services.trading.app:app`, one worker, engine loop off (`STONKS_API_RUN_ENGINE=
false`), reads token-protected (`STONKS_API_PROTECT_READS=always`), so every request pays for
the token check. Load: `bench/api/load.py`, 16 concurrent keep-alive clients, at most 3000
requests or 20 seconds per endpoint, after a short warm-up. Both share the machine's cores.

Run: `python bench/api/run.py [--start 2011-03-01] [--end 2011-12-30] [--concurrency 16]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.shared.config import load_config
from services.shared.db import connect, create_pool
from services.shared.logging import configure_logging
from services.shared.ports import free_port
from services.shared.runtime import resolve_server_urls
from services.trading.live.replay import Replay
from services.trading.market import setup_steps

DATABASE = "stonks_bench_api"
REDIS_DB = 2
TOKEN = "bench-token-0123456789-abcdefghijkl"
ENDPOINTS = ("/api/trading/status", "/api/trading/decisions?limit=50", "/api/trading/metrics", "/metrics")


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


# The replay's own decisions are few (the momentum signal is sparse); a live account piles up
# thousands. These copies (no recommendation, earlier timestamps) give the decisions page and
# the /metrics aggregation a table of a realistic size.
_COLUMNS = """decision, side, skip_reason, ticker, computed_position_size, computed_share_quantity,
    risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision, reserve_pool_at_decision,
    circuit_breaker_status, correlation_check_result, sector_exposure_check_result, earnings_proximity_flag,
    is_micro_trade, decision_trace"""
_COPY_DECISIONS = f"""
INSERT INTO trading_decisions (id, {_COLUMNS}, created_at)
SELECT gen_random_uuid(), {_COLUMNS}, created_at - g * interval '1 hour'
FROM trading_decisions CROSS JOIN generate_series(1, greatest($1 / (SELECT count(*) FROM trading_decisions), 1)) g
"""


async def prepare(
    server_url: str, redis_url: str, start: date, end: date, extra_decisions: int
) -> tuple[str, dict]:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    database_url = _with_path(server_url, f"/{DATABASE}")
    connection = await connect(database_url)
    try:
        await setup_steps.upgrade_schema(connection)
        await setup_steps.load_sample_market(connection)
        await setup_steps.write_momentum_signals(connection)
    finally:
        await connection.close()
    redis = aioredis.from_url(redis_url)
    await redis.flushdb()
    pool = await create_pool(database_url, max_size=6)
    try:
        summary = await Replay(pool, redis, start, end, capital=Decimal(10_000)).run()
        if extra_decisions:
            await pool.execute(_COPY_DECISIONS, extra_decisions)
        counts = dict(
            await pool.fetchrow(
                """SELECT (SELECT count(*) FROM trading_decisions) AS decisions,
                      (SELECT count(*) FROM closed_trades) AS closed_trades,
                      (SELECT count(*) FROM portfolio_snapshots) AS snapshots"""
            )
        )
    finally:
        await pool.close()
        await redis.flushdb()
        await redis.aclose()
    counts["sessions"] = summary.sessions
    return database_url, counts


def _wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2011-03-01")
    parser.add_argument("--end", default="2011-12-30")
    parser.add_argument("--concurrency", default="1,16", help="Client counts to run, comma-separated.")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--extra-decisions",
        type=int,
        default=20_000,
        help="Copies of the replay's decisions added, for a decisions table of a live size.",
    )
    args = parser.parse_args()
    config = load_config()
    configure_logging("WARNING")
    urls = resolve_server_urls(config)
    redis_url = _with_path(urls.redis_url, f"/{REDIS_DB}")
    print(f"preparing {DATABASE}: sample market, signals, replay {args.start}..{args.end} ...", flush=True)
    database_url, counts = asyncio.run(
        prepare(
            urls.database_url,
            redis_url,
            date.fromisoformat(args.start),
            date.fromisoformat(args.end),
            args.extra_decisions,
        )
    )
    print(f"data: {counts}", flush=True)
    port = free_port()
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_API_TOKEN": TOKEN,
        "STONKS_API_RUN_ENGINE": "false",
        "STONKS_API_PROTECT_READS": "always",
        "STONKS_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.trading.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    results: dict[str, dict] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        for clients in (int(c) for c in args.concurrency.split(",")):
            for endpoint in ENDPOINTS:
                requests = args.requests if clients > 1 else args.requests // 3
                out = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("load.py")),
                        base + endpoint,
                        "--token",
                        TOKEN,
                        "--concurrency",
                        str(clients),
                        "--requests",
                        str(requests),
                        "--seconds",
                        str(args.seconds),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=args.seconds + 120,
                )
                results[f"{endpoint} x{clients}"] = figures = json.loads(out.stdout)
                print(
                    f"{clients:3} clients  {endpoint:34} {figures['rps']:8.1f} req/s  p50 {figures['p50_ms']:7.2f} ms"
                    f"  p99 {figures['p99_ms']:7.2f} ms  errors {figures['errors']}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps({"data": counts, "results": results}, indent=2))


if __name__ == "__main__":
    main()
