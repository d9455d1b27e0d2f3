"""The Alpaca broker's fixture: brokers on the local Alpaca server (tests/alpaca_broker/harness.py)."""

from __future__ import annotations

import pytest

from tests.alpaca_broker.harness import make_brokers


@pytest.fixture
async def make(database_url, redis_client):
    async for build in make_brokers(database_url, redis_client):
        yield build
