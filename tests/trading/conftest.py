"""Fixtures shared by the engine's integration tests."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.shared.db import create_pool
from services.shared.embedded import ServerUrls
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


@pytest.fixture
def cli_env(database_url: str, server_urls: ServerUrls, tmp_path: Path) -> dict[str, str]:
    """The environment for `run_cli` (cli_harness.py): this test's database, the test servers'
    Redis, and the test's own data directory, so a command never reaches the owner's."""
    return {
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": server_urls.redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
    }


# One local Ray per test module that asks for it (starting Ray takes seconds): 2 CPUs, a small
# object store (the optimizer's tests, issue 16).
OBJECT_STORE_BYTES = 200 * 1024**2


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Path]:
    """A local Ray for the module; yields a directory the workers can see (they inherit the
    environment Ray was started with), for tests that leave markers there."""
    import ray

    directory = Path(tempfile.mkdtemp(prefix="stonks-ray-test-"))
    os.environ["STONKS_TEST_RAY_DIR"] = str(directory)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        object_store_memory=OBJECT_STORE_BYTES,
    )
    try:
        yield directory
    finally:
        ray.shutdown()
