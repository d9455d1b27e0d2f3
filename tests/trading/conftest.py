"""Fixtures shared by the engine's integration tests."""

from __future__ import annotations

import pytest

from services.shared.db import create_pool
from tests.trading.engine_harness import RISING, close_pool, enable_engine, seed_ticker


@pytest.fixture
async def market(database_url: str):
    """XYZ's rising daily bars in a fresh database, the engine enabled with single-order
    entries; yields the pool and the bars' session days."""
    pool = await create_pool(database_url, max_size=6)
    days = await seed_ticker(pool, "XYZ", RISING)
    await enable_engine(pool, gradual_entry_tranches=1)
    yield pool, days
    await close_pool(pool)
