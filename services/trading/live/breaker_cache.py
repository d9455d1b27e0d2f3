"""The circuit breakers' state mirrored in Redis, for fast lookup (seed task 8.1).

PostgreSQL (`circuit_breaker_events`) stays the authority: the engine decides from it, so a
lost, stale or flushed key can never let trading resume during a halt. The mirror is for
readers that want the answer without a database round trip (the broker service, the query
API, a shell): it is rewritten whenever the engine folds the breaker state — every full tick
and right after each new event — so it heals by itself after a Redis restart, and `as_of`
says how fresh it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
import structlog

from services.shared.redis_keys import TRADING_CB_PREFIX
from services.shared.schemas import CircuitBreakerTriggerType
from services.trading.core.models import CircuitBreakerState

log = structlog.get_logger(__name__)
BREAKER_STATE_KEY = f"{TRADING_CB_PREFIX}:state"


@dataclass(frozen=True, slots=True)
class MirroredState:
    state: CircuitBreakerState
    as_of: datetime


def encode(state: CircuitBreakerState, as_of: datetime) -> str:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return json.dumps(
        {
            "active": state.active,
            "trigger_type": str(state.trigger_type) if state.trigger_type else None,  # an enum or its value
            "triggered_at": iso(state.triggered_at),
            "cooldown_expires": iso(state.cooldown_expires),
            "ticker_cooldowns": {
                ticker: until.isoformat() for ticker, until in sorted(state.ticker_cooldowns.items())
            },
            "as_of": as_of.isoformat(),
        }
    )


def decode(raw: str | bytes) -> MirroredState:
    data = json.loads(raw)

    def at(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    state = CircuitBreakerState(
        active=data["active"],
        trigger_type=CircuitBreakerTriggerType(data["trigger_type"]) if data["trigger_type"] else None,
        triggered_at=at(data["triggered_at"]),
        cooldown_expires=at(data["cooldown_expires"]),
        ticker_cooldowns={
            ticker: datetime.fromisoformat(until) for ticker, until in data["ticker_cooldowns"].items()
        },
    )
    return MirroredState(state, datetime.fromisoformat(data["as_of"]))


async def publish(redis: aioredis.Redis, state: CircuitBreakerState, as_of: datetime) -> None:
    """Best effort: a Redis outage must not stop the engine, and the next tick rewrites it."""
    try:
        await redis.set(BREAKER_STATE_KEY, encode(state, as_of))
    except Exception as exc:  # noqa: BLE001 - the mirror is a convenience; PostgreSQL decides
        log.warning("could not mirror the circuit breaker state to Redis", error=str(exc))


async def read(redis: aioredis.Redis) -> MirroredState | None:
    """The mirrored state, or None when no engine has written it (yet)."""
    raw = await redis.get(BREAKER_STATE_KEY)
    return None if raw is None else decode(raw)
