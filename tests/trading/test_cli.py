"""The command line explains itself and fails with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.shared.embedded import ServerUrls
from services.shared.ports import free_port
from tests.trading.cli_harness import run_cli


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "signals", "servers", "db", "data"):
        assert command in result.stdout
    data_help = run_cli("data", "--help").stdout
    assert "load-sample" in data_help and "import-csv" in data_help


def test_bad_setting_is_one_line_and_exit_1() -> None:
    result = run_cli("db", "upgrade", env={"STONKS_TRADING_RESERVE_SIPHON_PCT": "2"})
    assert result.returncode == 1
    assert "STONKS_TRADING_RESERVE_SIPHON_PCT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_import_csv_reports_the_bad_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,date,open,high,low,close,volume\nXYZ,2024-01-02,10,9,11,10,5\n")
    result = run_cli("data", "import-csv", str(bad), env=cli_env)
    assert result.returncode == 1
    assert "line 2: prices are inconsistent" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_the_first_run_says_where_the_api_token_is_kept_and_never_logs_it(
    tmp_path: Path, server_urls: ServerUrls, database_url: str, redis_url: str
) -> None:
    """Issue 12: the token printed at first start ended up in the run log."""
    port = free_port()
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_DATA_DIR": str(tmp_path),
        "STONKS_API_PORT": str(port),
        "STONKS_LOG_LEVEL": "DEBUG",
        "COLUMNS": "200",
    }
    env.pop("STONKS_API_TOKEN", None)
    run = subprocess.Popen(
        [sys.executable, "-m", "services.trading", "run", "--external-broker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while run.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGINT)
        log, _ = run.communicate(timeout=60)
    token_file = tmp_path / "api-token"
    token = token_file.read_text().strip()
    assert f"kept in {token_file}" in log, log
    assert token not in log
    # Ctrl-C is the way to stop it: a clean exit, not uvicorn's lifespan dying with a traceback.
    assert run.returncode == 0, log
    assert "Traceback" not in log, log
