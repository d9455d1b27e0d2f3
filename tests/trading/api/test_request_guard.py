"""The request guard (issue 12, defects 6 and 9): a wrong Host is refused before anything else,
a state change without the token before its body is read, and a body over the cap by its
declared length or while it streams in. Checked in the app (counting what the app read of a
streamed body) and through a real uvicorn (a 315 MB upload once took 13 s and 2.2 GB to refuse)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from services.shared.config import AppConfig, ConfigError, load_config
from services.trading.api.guard import MAX_BODY_BYTES, host_allowed, served_names
from services.trading.api.runtime import attached_runtime
from services.trading.api.settings import ApiSettings, ReadAccess
from services.trading.app import create_app
from services.trading.live.main_job import RuntimeParts
from tests.trading.api.conftest import AUTH, TOKEN, make_runtime
from tests.trading.api.served import raw_exchange, uvicorn_serving

pytestmark = pytest.mark.integration

CONFIG = "/api/trading/config"
HUGE = 315_000_000
CHUNK = 16 * 1024


class Upload:
    """A streamed body that records how much of it was read."""

    def __init__(self, size: int, chunk: int = CHUNK) -> None:
        self.size, self.chunk, self.read = size, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.read < self.size:
            part = b" " * min(self.chunk, self.size - self.read)
            self.read += len(part)
            yield part


async def _config(pool) -> tuple:
    return (
        dict(await pool.fetchrow("SELECT * FROM trading_engine_config")),
        await pool.fetchval("SELECT count(*) FROM trading_config_audit"),
    )


# -- the token before the body -----------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_state_change_without_the_token_is_refused_before_its_body_is_read(
    api, headers, declared
) -> None:
    upload = Upload(HUGE)
    if declared:
        headers = {**headers, "Content-Length": str(HUGE)}
    before = await _config(api.pool)
    started = time.monotonic()
    response = await api.client.put(
        CONFIG, content=upload, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["detail"] in ("bearer token required", "invalid bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert upload.read == 0
    assert time.monotonic() - started < 2  # it once took 10-13 s
    assert await _config(api.pool) == before


async def test_every_state_change_needs_the_token_even_where_no_route_is(api) -> None:
    for method, path in (("POST", "/api/trading/pause"), ("DELETE", CONFIG), ("PATCH", "/nowhere")):
        assert (await api.client.request(method, path)).status_code == 401
    assert (await api.client.request("DELETE", CONFIG, headers=AUTH)).status_code == 405


# -- the body cap ------------------------------------------------------------------------------


async def test_a_declared_body_over_the_cap_is_refused_unread(api) -> None:
    upload = Upload(HUGE)
    response = await api.client.put(
        CONFIG,
        content=upload,
        headers={**AUTH, "Content-Length": str(HUGE), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "65536 bytes" in response.json()["detail"]
    assert upload.read == 0


async def test_a_streamed_body_over_the_cap_is_refused_once_it_passes_the_cap(api) -> None:
    before = await _config(api.pool)
    upload = Upload(HUGE)
    response = await api.client.put(
        CONFIG, content=upload, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert MAX_BODY_BYTES < upload.read <= MAX_BODY_BYTES + CHUNK
    assert await _config(api.pool) == before


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_cap_is_read_and_applied(api, declared) -> None:
    body = json.dumps({"max_open_positions": 7}).encode()
    body += b" " * (MAX_BODY_BYTES - len(body))

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]

    response = await api.client.put(
        CONFIG, content=body if declared else streamed(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["config"]["max_open_positions"] == 7


async def test_the_largest_request_the_api_takes_is_far_below_the_cap(api) -> None:
    tickers = [f"T{i:013d}" for i in range(500)]  # 500 tickers of the longest length allowed
    body = {
        "start_date": "2024-01-02",
        "end_date": "2024-02-01",
        "initial_capital": "1000000",
        "tickers": tickers,
        "signals": "momentum",
    }
    assert len(json.dumps(body)) < MAX_BODY_BYTES / 4
    overrides = {
        tier: {
            f: "0.123456789012345678"
            for f in (
                "min_confidence",
                "base_allocation_pct",
                "max_position_pct",
                "max_sector_pct",
                "max_portfolio_heat",
            )
        }
        for tier in ("conservative", "moderate", "aggressive")
    }
    assert len(json.dumps({"risk_tier_overrides": overrides})) < MAX_BODY_BYTES / 4


# -- through a real server ---------------------------------------------------------------------


def _request(method: str, path: str, headers: dict[str, str], host: str = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


async def test_uvicorn_refuses_a_315_mb_upload_at_once_without_reading_it(api) -> None:
    app = create_app(api.runtime, dashboard_dir=None)
    async with uvicorn_serving(app) as port:
        declared = {"Content-Type": "application/json", "Content-Length": str(HUGE)}
        started = time.monotonic()
        # Headers only: an answer before any of the 315 MB arrives is an answer without reading it.
        unauthenticated = await raw_exchange(port, _request("PUT", CONFIG, declared))
        assert time.monotonic() - started < 2
        assert _status(unauthenticated) == 401 and b"connection: close" in unauthenticated.lower()
        too_large = await raw_exchange(port, _request("PUT", CONFIG, {**declared, **AUTH}))
        assert _status(too_large) == 413
        chunked = _request(
            "PUT", CONFIG, {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        chunk = b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)
        streamed = await raw_exchange(port, chunked, [chunk] * (MAX_BODY_BYTES // CHUNK + 1))
        assert _status(streamed) == 413
        ok = json.dumps({"max_open_positions": 9}).encode()
        applied = await raw_exchange(
            port,
            _request(
                "PUT",
                CONFIG,
                {
                    **AUTH,
                    "Content-Type": "application/json",
                    "Content-Length": str(len(ok)),
                    "Connection": "close",
                },
            )
            + ok,
        )
        assert _status(applied) == 200, applied
    assert await api.pool.fetchval("SELECT max_open_positions FROM trading_engine_config") == 9


# -- the Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:8000", True),
        ("localhost.", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("10.42.0.17:8000", True),
        ("stonks.example.com", True),
        ("rebind.attacker.example", False),
        ("localhost.attacker.example", False),
        ("stonks.example.com.evil", False),
        ("", False),
        (None, False),
    ],
)
def test_the_host_must_be_a_served_name_or_an_address(host, allowed) -> None:
    assert host_allowed(host, served_names("127.0.0.1", ["stonks.example.com"])) is allowed


@pytest.mark.parametrize("access", [ReadAccess.AUTO, ReadAccess.NEVER])
async def test_a_rebound_name_reads_nothing_even_on_loopback(pool, redis_client, api, access) -> None:
    runtime = make_runtime(pool, redis_client, api.clock, read_access=access)
    app = create_app(runtime, dashboard_dir=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/api/trading/notifications/config")).status_code == 200
        for path in ("/api/trading/notifications/config", "/api/trading/status", "/health", "/openapi.json"):
            response = await client.get(path, headers={"Host": "rebind.attacker.example"})
            assert response.status_code == 400, path
            assert "STONKS_API_ALLOWED_HOSTS" in response.json()["detail"]
        # Before the token: a wrong Host is refused as such, whatever else is wrong.
        response = await client.put(CONFIG, json={"max_open_positions": 3}, headers={"Host": "evil.example"})
        assert response.status_code == 400


async def test_uvicorn_checks_the_host_the_client_sent(api) -> None:
    app = create_app(api.runtime, dashboard_dir=None)
    async with uvicorn_serving(app) as port:
        wrong = await raw_exchange(
            port, _request("GET", "/health", {"Connection": "close"}, host="evil.example")
        )
        right = await raw_exchange(
            port, _request("GET", "/health", {"Connection": "close"}, host=f"localhost:{port}")
        )
    assert (_status(wrong), _status(right)) == (400, 200)


def test_allowed_hosts_come_from_the_environment_checked(monkeypatch, pool, redis_client, api) -> None:
    monkeypatch.setenv("STONKS_API_TOKEN", TOKEN)
    monkeypatch.setenv("STONKS_API_HOST", "0.0.0.0")
    monkeypatch.setenv("STONKS_API_ALLOWED_HOSTS", " Trading-Engine , stonks.example.com. ")
    config = load_config()
    runtime = attached_runtime(
        config, RuntimeParts(pool, redis_client, api.clock, api.runtime.engine), api=ApiSettings()
    )
    assert runtime.allowed_hosts == {"localhost", "0.0.0.0", "trading-engine", "stonks.example.com"}
    for bad in ("https://stonks.example.com", "stonks.example.com:443", "a b", "stonks.example.com/path"):
        monkeypatch.setenv("STONKS_API_ALLOWED_HOSTS", bad)
        with pytest.raises(ConfigError, match="STONKS_API_ALLOWED_HOSTS"):
            load_config()
    monkeypatch.delenv("STONKS_API_ALLOWED_HOSTS")
    assert AppConfig().allowed_host_names == ()
