"""GET /api/trading/tax-report and its download (issue 17), on the real app and database: the
hand-checked year of tests/trading/test_tax_report.py, stored as the engine stores lots."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from services.trading.core.tax_lots import LotUpdate, TaxLotBook
from services.trading.live import tax_lot_store
from tests.trading.engine_harness import at
from tests.trading.test_tax_report import year_2024

pytestmark = pytest.mark.integration


async def store_year(api) -> None:
    book = year_2024().book
    await api.pool.execute("INSERT INTO tickers (ticker) VALUES ('XYZ') ON CONFLICT DO NOTHING")
    await api.pool.execute(
        """INSERT INTO price_bars (ticker, interval, ts, open, high, low, close, volume)
           VALUES ('XYZ', '1d', $1, 50, 50, 50, 50, 100), ('XYZ', '1d', $2, 70, 70, 70, 70, 100)""",
        at(date(2024, 12, 31), 16),
        at(date(2025, 1, 2), 16),  # after year end: not the year's close
    )
    async with api.pool.acquire() as connection:
        await tax_lot_store.save(connection, LotUpdate(TaxLotBook(), book.lots, ()))
    api.clock.set(at(date(2025, 3, 3), 10))


async def test_the_year_in_json_with_the_hand_checked_figures(api) -> None:
    await store_year(api)
    body = (await api.client.get("/api/trading/tax-report", params={"year": 2024})).json()
    assert [(r["description"], r["code"], r["adjustment"], r["gain"]) for r in body["short_term"]] == [
        ("10 sh. XYZ", "W", "52.00", "0.00"),
        ("4 sh. XYZ", "", "0", "15.20"),
        ("3 sh. QQQ", "", "0", "-15.00"),
    ]
    assert (body["short_totals"]["gain"], body["long_totals"]["gain"], body["net_gain"]) == (
        "0.20",
        "99.00",
        "99.20",
    )
    assert body["short_totals"]["schedule_d_lines"] == "1b, 2 or 3"
    [held] = body["open_lots"]
    assert (held["adjusted_basis"], held["price"], held["price_date"], held["unrealized_gain"]) == (
        "307.20", "50", "2024-12-31", "-7.20"
    )  # fmt: skip
    assert body["pending_deferred"] == "31.20" and body["unsettled_losses"] == []
    assert "Not tax advice" in body["not_covered"]


async def test_downloads_as_csv_and_html(api) -> None:
    await store_year(api)
    response = await api.client.get(
        "/api/trading/tax-report/download", params={"year": 2024, "format": "csv"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="tax-report-2024.csv"' in response.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(response.text)))
    header = lines.index(["description", "date_acquired", "date_sold", "proceeds", "cost_basis", "code",
                          "adjustment", "gain_or_loss", "term", "holding_period_start", "lot_ids"])  # fmt: skip
    rows = lines[header + 1 : lines.index([], header)]
    assert sum(Decimal(r[7]) for r in rows) == Decimal("99.20") and len(rows) == 4
    page = await api.client.get("/api/trading/tax-report/download", params={"year": 2024})
    assert page.headers["content-type"].startswith("text/html") and "Schedule D" in page.text
    assert "(15.00)" in page.text and "Not tax advice" in page.text


async def test_a_year_to_come_and_a_bad_format_are_refused_with_422(api) -> None:
    response = await api.client.get("/api/trading/tax-report", params={"year": 2025})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "year"]]
    response = await api.client.get(
        "/api/trading/tax-report/download", params={"year": 2023, "format": "pdf"}
    )
    assert response.status_code == 422
    assert any(e["loc"] == ["query", "format"] for e in response.json()["detail"])
    assert (await api.client.get("/api/trading/tax-report")).status_code == 422
