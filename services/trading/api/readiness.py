"""What /ready checks (issue 12, defect 5): every dependency this process uses.

PostgreSQL and the schema always. When the engine runs in this process (the app's lifespan,
or `stonks run` beside the API): Redis (the order and fill queues), the engine's account lock
and loop, and its LISTEN wake-up; the paper broker's loop when that runs here too. Each check
is ok, degraded or down. Only the wake-up degrades: without it decisions still happen, at the
next poll. Any check down makes the process not ready (503); degraded is ready (200).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from services.trading.api.models import CheckState, Readiness
from services.trading.api.runtime import EngineRunner, Runtime
from services.trading.live import read_model
from services.trading.live.engine import TradingEngine

if TYPE_CHECKING:
    import asyncpg

PROBE_TIMEOUT_SECONDS = 2.0  # the probes run at once, inside the Helm chart's 3 s probe timeout
# A loop silent this long beyond its own longest wait between passes is stuck, not busy.
STALL_GRACE_SECONDS = 120.0
PAPER_BROKER_LONGEST_WAIT_SECONDS = 10.0  # its back-off's cap (services/paper_broker/broker.py)


@dataclass(frozen=True, slots=True)
class Check:
    state: CheckState
    detail: str | None = None


OK = Check("ok")


def _down(detail: str) -> Check:
    return Check("down", detail)


# -- the rules: states in, a verdict out (no I/O) ----------------------------------------------


def verdict(checks: Mapping[str, Check]) -> Readiness:
    states = {check.state for check in checks.values()}
    status = "not_ready" if "down" in states else "degraded" if "degraded" in states else "ready"
    return Readiness(
        status=status,
        checks={name: check.state for name, check in checks.items()},
        detail={name: check.detail for name, check in checks.items() if check.detail},
    )


def loop_check(name: str, silent: float | None, longest_wait_seconds: float) -> Check:
    """`silent`: seconds since the loop last finished a pass, None when it is not running."""
    if silent is None:
        return _down(f"the {name} loop is not running")
    if silent > longest_wait_seconds + STALL_GRACE_SECONDS:
        return _down(f"the {name} loop has not finished a pass for {silent:.0f} s")
    return OK


def engine_check(engine: TradingEngine, runner: EngineRunner | None) -> Check:
    """Down unless the engine holds the account's lock and its loop is making passes; the
    runner's last failure (the app's own engine) says why a loop is not running."""
    error = runner.error if runner is not None else None
    if runner is not None and not runner.running:
        return _down(error or "the engine loop is not running")
    if not engine.started:
        return _down(error or "waiting for the account lock or still starting")
    if not engine.holds_lock:
        return _down("the account lock was lost with its connection; the next full tick takes it again")
    polling = engine.settings.polling_interval.total_seconds()
    check = loop_check("engine", engine.heartbeat.silent_for(), polling)
    return _down(f"{check.detail}: {error}") if check.state == "down" and error else check


def wake_up_check(engine: TradingEngine) -> Check:
    listener = engine.wake_up
    if listener is not None and listener.listening:
        return OK
    why = listener.problem if listener is not None else "not listening yet"
    every = engine.settings.polling_interval.total_seconds()
    return Check("degraded", f"{why}; new recommendations wait for the next poll (every {every:g} s)")


# -- the probes ------------------------------------------------------------------------------


async def assess(runtime: Runtime, runner: EngineRunner | None) -> Readiness:
    engine = runtime.engine
    engine_here = engine is not None and (runner is not None or runtime.engine_loop_in_process)
    uses_redis = engine_here or runtime.paper_broker_loop is not None
    async with asyncio.TaskGroup() as probes:  # neither probe raises
        database = probes.create_task(_database_checks(runtime.pool))
        redis = probes.create_task(_redis_check(runtime.redis)) if uses_redis else None
    checks = database.result()
    if redis is not None:
        checks["redis"] = redis.result()
    if engine_here:
        checks["engine"] = engine_check(engine, runner)
        checks["wake_up"] = wake_up_check(engine)
    if runtime.paper_broker_loop is not None:
        checks["paper_broker"] = loop_check(
            "paper broker", runtime.paper_broker_loop.silent_for(), PAPER_BROKER_LONGEST_WAIT_SECONDS
        )
    return verdict(checks)


async def _database_checks(pool: asyncpg.Pool) -> dict[str, Check]:
    try:
        pending = await asyncio.wait_for(read_model.pending_migrations(pool), PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "down", said why
        return {"database": _down(_failure(exc)), "migrations": _down("unknown: the database did not answer")}
    return {"database": OK, "migrations": _down("not applied: " + ", ".join(pending)) if pending else OK}


async def _redis_check(redis: aioredis.Redis) -> Check:
    try:
        await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - as above
        return _down(_failure(exc))
    return OK


def _failure(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]
