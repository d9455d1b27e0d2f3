"""The HTTP service answers its liveness probe."""

from __future__ import annotations

import httpx

from services.trading.app import create_app


async def test_health() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
