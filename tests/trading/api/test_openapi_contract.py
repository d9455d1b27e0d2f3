"""The API keeps its OpenAPI contract (issues 6 and 12): schemathesis reads /openapi.json from the
running server and generates requests for every operation in it, valid ones and invalid ones,
sent with the token. No answer may be a server error; a valid request's answer must have a
documented status, content type, headers and a body matching its schema; an invalid one must be
refused (4xx); and a request without the token must be refused wherever the schema asks for it.

The app runs under a real uvicorn, on the real database and Redis with a small traded history
(so response schemas meet real rows), on an event loop of its own thread; requests go over TCP.
A real server rather than the ASGI app: the request guard (Host, token before the body, body
cap) and the HTTP framing are the server's and the guard's, and schemathesis' auth check replays
a request without the token over the same connection a client would use. Reads need the token
here (`always`), so that check means something for every operation. Bounded: a few dozen
examples per operation, about a minute in all.
"""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
import requests
import schemathesis  # a test dependency
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.shared.db import create_pool
from services.trading.api.settings import ReadAccess
from services.trading.app import create_app
from tests.trading.api.conftest import AUTH, make_history, make_runtime
from tests.trading.api.served import uvicorn_serving
from tests.trading.engine_harness import close_pool

pytestmark = pytest.mark.integration

POSITIVE_EXAMPLES = 100
NEGATIVE_EXAMPLES = 60
CHECKS = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
        ignored_auth,
    ],
    GenerationMode.NEGATIVE: [not_a_server_error, status_code_conformance, negative_data_rejection],
}


class ServedApp:
    """The app under uvicorn on its own thread's event loop, which owns the pool, Redis and the
    engine; `base_url` is where it listens."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-app", daemon=True)
        self.thread.start()
        self.exit = AsyncExitStack()
        port = self._run(self._open(database_url, redis_url), timeout=180)
        self.base_url = f"http://127.0.0.1:{port}"

    def _run(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _open(self, database_url: str, redis_url: str) -> int:
        pool = await create_pool(database_url, max_size=8)
        self.exit.push_async_callback(close_pool, pool)
        redis = aioredis.from_url(redis_url)
        self.exit.push_async_callback(redis.aclose)
        await redis.flushdb()
        history = await make_history(pool, redis)
        self.exit.push_async_callback(history.stack.engine.stop)
        runtime = make_runtime(
            pool, redis, history.stack.clock, engine=history.stack.engine, read_access=ReadAccess.ALWAYS
        )
        return await self.exit.enter_async_context(uvicorn_serving(create_app(runtime, dashboard_dir=None)))

    def close(self) -> None:
        try:
            self._run(self.exit.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def _exercise(
    served: ServedApp, session: requests.Session, operation, mode: GenerationMode, examples: int
) -> None:
    @settings(
        max_examples=examples,
        # The same examples every run, so CI is repeatable; STONKS_SCHEMATHESIS_RANDOM=1 explores
        # new ones by hand (a random run found the non-object body answered 200).
        derandomize=not os.environ.get("STONKS_SCHEMATHESIS_RANDOM"),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=AUTH))
    def check(case) -> None:
        case.call_and_validate(base_url=served.base_url, session=session, checks=CHECKS[mode])

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no parameters, no body


def test_every_operation_keeps_its_contract(database_url: str, redis_url: str) -> None:
    served = ServedApp(database_url, redis_url)
    try:
        schema = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 16
        with requests.Session() as session:
            for operation in operations:
                _exercise(served, session, operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
                _exercise(served, session, operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    finally:
        served.close()
