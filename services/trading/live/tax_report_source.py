"""The tax report's inputs from PostgreSQL (issue 17): every lot piece, and each held ticker's
last daily close on or before the year's end, then the pure report (`core/tax_report.py`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import asyncpg

from services.trading.core.tax_report import TaxReport, build_tax_report
from services.trading.core.trading_window import NEW_YORK
from services.trading.live import tax_lot_store

Executor = asyncpg.Pool | asyncpg.Connection


async def closes_on_or_before(
    executor: Executor, tickers: list[str], day: date
) -> dict[str, tuple[date, Decimal]]:
    """Each ticker's last daily close stamped before the end of `day` in New York."""
    end = datetime.combine(day + timedelta(days=1), time.min, NEW_YORK)
    rows = await executor.fetch(
        """SELECT DISTINCT ON (ticker) ticker, ts, close FROM price_bars
           WHERE ticker = ANY($1::text[]) AND interval = '1d' AND ts < $2
           ORDER BY ticker, ts DESC""",
        sorted(set(tickers)),
        end,
    )
    return {r["ticker"]: (r["ts"].astimezone(NEW_YORK).date(), r["close"]) for r in rows}


async def tax_report(executor: Executor, year: int, as_of: date) -> TaxReport:
    """The report of `year` as the lot book stands on `as_of` (raises ValueError for a year
    not yet begun)."""
    if year > as_of.year:
        raise ValueError(f"the year {year} has not begun on {as_of}")
    lots = await tax_lot_store.all_lots(executor)
    year_end = min(date(year, 12, 31), as_of)
    held = [lot.ticker for lot in lots if lot.acquisition_date <= year_end]
    return build_tax_report(lots, year, as_of, await closes_on_or_before(executor, held, year_end))
