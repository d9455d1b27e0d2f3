"""The command line explains itself and fails with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.shared.embedded import ServerUrls


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.trading", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=120)


def test_help_lists_every_command() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "signals", "servers", "db", "data"):
        assert command in result.stdout
    data_help = _cli("data", "--help").stdout
    assert "load-sample" in data_help and "import-csv" in data_help


def test_bad_setting_is_one_line_and_exit_1() -> None:
    result = _cli("db", "upgrade", env={"STONKS_TRADING_RESERVE_SIPHON_PCT": "2"})
    assert result.returncode == 1
    assert "STONKS_TRADING_RESERVE_SIPHON_PCT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_import_csv_reports_the_bad_line(tmp_path: Path, server_urls: ServerUrls, database_url: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,date,open,high,low,close,volume\nXYZ,2024-01-02,10,9,11,10,5\n")
    env = {"STONKS_DATABASE_URL": database_url, "STONKS_REDIS_URL": server_urls.redis_url}
    result = _cli("data", "import-csv", str(bad), env=env)
    assert result.returncode == 1
    assert "line 2: prices are inconsistent" in result.stderr
    assert "Traceback" not in result.stderr
