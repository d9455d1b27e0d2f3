"""`stonks broker check` prints the account through the real SDK and trades nothing; bad keys
end with Alpaca's reason and never echo the secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from decimal import Decimal

import pytest

from services.alpaca_broker.fake_server import FakeAlpaca


@pytest.fixture
def fake():
    server = FakeAlpaca(api_key="PKCHECK", secret_key="the-secret-key", cash=Decimal("2500.50")).start()
    yield server
    server.stop()


def _run(fake: FakeAlpaca, secret: str, *command: str, **more: str) -> subprocess.CompletedProcess[str]:
    """The command as the owner runs it (its own process: it configures logging for itself)."""
    environment = {
        "STONKS_BROKER": "alpaca",
        "STONKS_ALPACA_API_KEY": "PKCHECK",
        "STONKS_ALPACA_SECRET_KEY": secret,
        "STONKS_ALPACA_URL": fake.base_url,
        "COLUMNS": "200",
        **more,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.trading", *(command or ("broker", "check"))],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        timeout=120,
    )


def test_check_prints_the_account_and_only_reads(fake: FakeAlpaca) -> None:
    result = _run(fake, "the-secret-key")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert fake.account_id in output and "$2,500.50" in output
    assert {method for method, _, _ in fake.requests} == {"GET"}


def test_bad_keys_fail_with_alpacas_reason(fake: FakeAlpaca) -> None:
    result = _run(fake, "not-the-key")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "not authorized" in output and "HTTP 401" in output
    assert "not-the-key" not in output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_with_bad_keys_stops_at_once_with_one_line(fake: FakeAlpaca, tmp_path) -> None:
    """`stonks run` checks the account before it starts anything: bad keys end the job with
    Alpaca's reason on one line and status 1, no traceback, no server started, no order sent."""
    result = _run(
        fake,
        "not-the-key",
        "run",
        STONKS_DATA_DIR=str(tmp_path),
        STONKS_API_PORT=str(_free_port()),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "not-the-key" not in output
    [line] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "not authorized" in line and "HTTP 401" in line
    assert {method for method, _, _ in fake.requests} == {"GET"}
    assert not (tmp_path / "servers").exists()  # no database or Redis was started
