"""`stonks-trading tax-report --year` (issue 17): files written and the totals printed, from
lots stored as the engine stores them; a year to come refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.shared.db import connect
from services.trading.core.tax_lots import LotUpdate, TaxLotBook
from services.trading.live import tax_lot_store
from tests.trading.cli_harness import run_cli
from tests.trading.test_tax_report import year_2024


@pytest.mark.integration
async def test_writes_csv_and_html_and_prints_schedule_d(
    tmp_path: Path, database_url: str, cli_env: dict[str, str]
) -> None:
    connection = await connect(database_url)
    try:
        await connection.execute("DELETE FROM tax_lots")
        await tax_lot_store.save(connection, LotUpdate(TaxLotBook(), year_2024().book.lots, ()))
    finally:
        await connection.close()
    result = run_cli("tax-report", "--year", "2024", "--out", str(tmp_path), env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "net gain or loss 99.20" in result.stdout and "wash-sale losses deferred 31.20" in result.stdout
    assert "5 sh. ABC" in (tmp_path / "tax-report-2024.csv").read_text()
    assert "Schedule D" in (tmp_path / "tax-report-2024.html").read_text()


def test_a_year_to_come_is_one_line_and_exit_1() -> None:
    result = run_cli("tax-report", "--year", "9999")
    assert result.returncode == 1 and "has not begun" in result.stderr and "Traceback" not in result.stderr
