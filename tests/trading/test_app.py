"""The HTTP service serves nothing before its lifespan has built the runtime: there is no Host
list or token to check a request against yet, so it refuses (503) rather than guess. Its
probes with a runtime are in tests/trading/api/test_probes_and_auth.py."""

from __future__ import annotations

import httpx

from services.trading.app import create_app


async def test_nothing_is_served_before_the_runtime_exists() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        for method, path in (
            ("GET", "/health"),
            ("GET", "/api/trading/status"),
            ("PUT", "/api/trading/config"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 503
            assert response.json() == {"detail": "the service is starting"}
