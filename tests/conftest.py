"""Real servers for the tests (no fakes).

By default the tests start private embedded PostgreSQL and Valkey servers in a temporary
data directory, once per run. With `STONKS_TEST_DATABASE_URL` and `STONKS_TEST_REDIS_URL`
set, they use those servers instead (CI runs the integration tests a second time against the
machine's system PostgreSQL and Redis this way).

Each test that asks for `database_url` gets a database of its own, cloned from a migrated
template, so tests cannot see each other's rows; `redis_client` gets a flushed database.

The tests run in parallel (pytest-xdist, one process per core). On shared servers each
worker keeps to its own template database and its own Redis databases, so two workers never
drop each other's template or flush each other's keys.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.shared.db import connect
from services.shared.embedded import EmbeddedServers, ServerUrls
from services.shared.migrations import upgrade

# pytest-xdist names its workers gw0, gw1, ...; a run without workers is worker 0.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
TEMPLATE_DB = f"stonks_test_template_{WORKER}"
# Redis has 16 databases: worker N works in database N (what a test's processes are handed
# as STONKS_REDIS_URL) and flushes database 15 - N (the `redis_client` fixture's).
WORKER_REDIS_DB = WORKER
TEST_REDIS_DB = 15 - WORKER


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_urls() -> Iterator[ServerUrls]:
    database_url = os.environ.get("STONKS_TEST_DATABASE_URL")
    redis_url = os.environ.get("STONKS_TEST_REDIS_URL")
    if database_url and redis_url:
        yield ServerUrls(database_url, _with_database(redis_url, str(WORKER_REDIS_DB)))
        return
    # Not under pytest's own temporary directories: another pytest run on the machine may
    # prune those (changing permissions as it goes) while this run's servers still use them.
    directory = Path(tempfile.mkdtemp(prefix="stonks-test-servers-"))
    servers = EmbeddedServers(directory)
    try:
        yield servers.ensure_running()
    finally:
        servers.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(server_urls: ServerUrls) -> str:
    """A database with every migration applied, cloned for each test."""
    admin = await asyncpg.connect(server_urls.database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    url = _with_database(server_urls.database_url, TEMPLATE_DB)
    connection = await connect(url)
    try:
        await upgrade(connection)
    finally:
        await connection.close()
    return TEMPLATE_DB


async def _create_database(server_urls: ServerUrls, template: str | None) -> str:
    name = f"stonks_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_urls.database_url)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return name


async def _drop_database(server_urls: ServerUrls, name: str) -> None:
    admin = await asyncpg.connect(server_urls.database_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def database_url(server_urls: ServerUrls, template_database: str) -> AsyncIterator[str]:
    """URL of a fresh, fully migrated database for this test alone."""
    name = await _create_database(server_urls, template_database)
    yield _with_database(server_urls.database_url, name)
    await _drop_database(server_urls, name)


@pytest.fixture
async def empty_database_url(server_urls: ServerUrls) -> AsyncIterator[str]:
    """URL of a fresh database with no schema at all (for migration tests)."""
    name = await _create_database(server_urls, None)
    yield _with_database(server_urls.database_url, name)
    await _drop_database(server_urls, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def redis_url(server_urls: ServerUrls) -> str:
    return _with_database(server_urls.redis_url, str(TEST_REDIS_DB))


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
