"""Connecting to PostgreSQL with asyncpg, with JSON columns decoded to Python values."""

from __future__ import annotations

import json
import math
from typing import Any

import asyncpg


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity, and PostgreSQL refuses them: write them as strings, so a
    bad upstream number shows in a decision trace instead of failing the write."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def encode_json(value: Any) -> str:
    return json.dumps(_json_safe(value), default=str, allow_nan=False)


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=encode_json, decoder=json.loads, schema="pg_catalog"
        )


async def connect(url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(url)
    await _init_connection(connection)
    return connection


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A pooled connection goes back without asyncpg's reset query (UNLISTEN, RESET ALL,
    advisory unlock): one server round trip saved on every pooled query, which is on the
    decision path (issue 5). asyncpg still rolls back an open transaction first. This is safe
    because no code leaves session state on a pooled connection: the two that hold some, the
    engine's account lock and its LISTEN, are kept out of the pool and cleaned by their owner
    (engine.py, wake_listener.py; checked by tests/trading/test_engine_faults.py)."""


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )
