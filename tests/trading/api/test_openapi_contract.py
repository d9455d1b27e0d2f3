"""The API keeps its OpenAPI contract (issue 6): schemathesis generates requests for every
operation from the schema, valid ones and invalid ones, and each answer must be no server
error, a documented status code and content type, and a body that matches its schema.

The app runs on the real database and Redis, with a small traded history so the response
schemas meet real rows. Requests go through httpx's ASGI transport on one event loop that
owns the pool (schemathesis' own ASGI client would start a loop per request). Bounded: a few
dozen examples per operation, well under a minute in all.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import schemathesis  # noqa: E402 - a test dependency
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.shared.db import create_pool
from services.trading.app import create_app
from tests.trading.api.conftest import AUTH, make_history, make_runtime
from tests.trading.engine_harness import close_pool

pytestmark = pytest.mark.integration

POSITIVE_EXAMPLES = 50
NEGATIVE_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def _httpx_kwargs(transport: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: transport[k] for k in ("method", "url", "headers", "params", "json") if k in transport}
    if "data" in transport:
        kwargs["content"] = transport["data"]
    return kwargs


class ContractRun:
    """The app on its own event loop; each generated case is sent and checked on it."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.exit = AsyncExitStack()
        self.client, self.history = self.loop.run_until_complete(self._open(database_url, redis_url))

    async def _open(self, database_url: str, redis_url: str):
        pool = await create_pool(database_url, max_size=8)
        self.exit.push_async_callback(close_pool, pool)
        redis = aioredis.from_url(redis_url)
        self.exit.push_async_callback(redis.aclose)
        await redis.flushdb()
        history = await make_history(pool, redis)
        self.exit.push_async_callback(history.stack.engine.stop)
        app = create_app(make_runtime(pool, redis, history.stack.clock, engine=history.stack.engine),
                         dashboard_dir=None)
        await self.exit.enter_async_context(app.router.lifespan_context(app))
        client = await self.exit.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"))
        return client, history

    def send(self, case) -> httpx.Response:
        kwargs = _httpx_kwargs(case.as_transport_kwargs(base_url="http://test", headers=AUTH))
        return self.loop.run_until_complete(self.client.request(**kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.exit.aclose())
        self.loop.close()


def _exercise(run: ContractRun, operation, mode: GenerationMode, examples: int) -> None:
    checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error, status_code_conformance]

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        response = run.send(case)
        case.validate_response(response, checks=checks, headers=AUTH)

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no parameters, no body


def test_every_operation_keeps_its_contract(database_url: str, redis_url: str) -> None:
    app = create_app(dashboard_dir=None)
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    run = ContractRun(database_url, redis_url)
    try:
        for operation in operations:
            _exercise(run, operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
            _exercise(run, operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    finally:
        run.close()
