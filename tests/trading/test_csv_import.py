"""A user's CSV loads whole or not at all, and bad rows are reported by line number."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from services.trading.market import setup_steps
from services.trading.market.csv_import import CsvImportError, read_bars_csv

GOOD = """ticker,date,open,high,low,close,volume
XYZ,2024-01-02,10.00,10.50,9.80,10.20,1000
XYZ,2024-01-03,10.20,10.40,10.00,10.10,1200
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    return path


def test_good_file_parses(tmp_path: Path) -> None:
    bars = read_bars_csv(_write(tmp_path, GOOD))
    assert [(b.ticker, str(b.close)) for b in bars] == [("XYZ", "10.20"), ("XYZ", "10.10")]


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("XYZ,2024-01-04,10,9,11,10,5", "line 4: prices are inconsistent"),
        ("XYZ,2024-01-04,ten,11,9,10,5", "line 4: open 'ten' is not a number"),
        ("XYZ,2024-01-04,10,11,9,-10,5", "line 4: close '-10' must be a positive number"),
        ("XYZ,2024-01-06,10,11,9,10,5", "line 4: 2024-01-06 is not an NYSE trading session"),
        ("XYZ,2024-01-04,10,11,9,10,1.5", "line 4: volume '1.5' is not a whole number"),
        ("XYZ,2024-01-03,10,11,9,10,5", "line 4: duplicate bar for XYZ"),
        ("XYZ,2024-01-04,NaN,11,9,10,5", "line 4: open 'NaN' must be a positive number"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path: Path, bad_line: str, expected: str) -> None:
    with pytest.raises(CsvImportError, match=expected):
        read_bars_csv(_write(tmp_path, GOOD + bad_line + "\n"))


def test_missing_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match="line 1: missing column.*volume"):
        read_bars_csv(_write(tmp_path, "ticker,date,open,high,low,close\n"))


@pytest.mark.integration
async def test_a_bad_file_writes_nothing(db: asyncpg.Connection, tmp_path: Path) -> None:
    with pytest.raises(CsvImportError):
        await setup_steps.import_csv(db, _write(tmp_path, GOOD + "XYZ,2024-01-04,10,9,11,10,5\n"), "Tech")
    assert await db.fetchval("SELECT count(*) FROM price_bars") == 0
    assert await db.fetchval("SELECT count(*) FROM tickers") == 0


@pytest.mark.integration
async def test_a_good_file_loads_with_its_sector(db: asyncpg.Connection, tmp_path: Path) -> None:
    assert await setup_steps.import_csv(db, _write(tmp_path, GOOD), "Industrials") == 2
    assert await db.fetchval("SELECT sector FROM tickers WHERE ticker = 'XYZ'") == "Industrials"
    assert await setup_steps.import_csv(db, _write(tmp_path, GOOD), "Industrials") == 2
    assert await db.fetchval("SELECT count(*) FROM price_bars") == 2
