"""The sample market: real daily bars and earnings dates read from installed PyPI packages.

- Bars: `bokeh-sampledata` (Quandl WIKI prices, public domain) for AAPL, GOOG, IBM and MSFT,
  2000-03 to 2013-03 (GOOG from 2004-08). Its open/high/low/close are unadjusted, so each
  bar is scaled by that day's `adj_close / close` ratio: prices become split- *and*
  dividend-adjusted, and a 7:1 split no longer looks like an 86% crash to the stops.
  Volume is divided by the same ratio (an approximation for dividend days).
- Sectors and names: `pytickersymbols`.
- Earnings dates: `stocks-earnings-dates` (SEC 8-K filings), read straight from the SQLite
  file the wheel ships; its Python module is not imported (it does not import cleanly).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import sqlite3
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from services.trading.core.trading_window import session_times
from services.trading.market.market_data import EarningsDate, PriceBar, TickerInfo

SAMPLE_TICKERS = ("AAPL", "GOOG", "IBM", "MSFT")
SOURCE = "bokeh-sampledata (Quandl WIKI, public domain), split/dividend-adjusted"
EARNINGS_SOURCE = "stocks-earnings-dates (SEC 8-K)"
PRICE_STEP = Decimal("0.0001")
# Names on the shipped data differ from today's symbols for one ticker.
_SYMBOL_ALIASES = {"GOOG": ("GOOGL", "GOOG")}
_KNOWN_SECTORS = ("Technology", "Financials", "Health Care", "Energy", "Industrials", "Utilities")


def _package_dir(name: str) -> Path:
    """Where a package is installed, found without importing (and so running) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _raw_rows() -> Iterator[dict[str, str]]:
    path = _package_dir("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        yield from csv.DictReader(handle)


def _adjusted_bar(row: dict[str, str]) -> PriceBar:
    ratio = Decimal(row["Adj Close"]) / Decimal(row["Close"])

    def adjust(column: str) -> Decimal:
        return (Decimal(row[column]) * ratio).quantize(PRICE_STEP)

    session = date.fromisoformat(row["Date"])
    return PriceBar(
        ticker=row["Ticker"],
        interval="1d",
        ts=session_times(session)[1],
        open=adjust("Open"),
        high=adjust("High"),
        low=adjust("Low"),
        close=adjust("Close"),
        volume=int(Decimal(row["Volume"]) / ratio),
    )


def load_sample_bars(tickers: tuple[str, ...] = SAMPLE_TICKERS) -> list[PriceBar]:
    return [_adjusted_bar(row) for row in _raw_rows() if row["Ticker"] in tickers]


@cache
def _ticker_directory() -> dict[str, dict]:
    from pytickersymbols import PyTickerSymbols

    directory: dict[str, dict] = {}
    for stock in PyTickerSymbols().get_all_stocks():
        for symbol in stock.get("symbols", []):
            directory.setdefault(symbol.get("yahoo", ""), stock)
    return directory


def sample_tickers(tickers: tuple[str, ...] = SAMPLE_TICKERS) -> list[TickerInfo]:
    infos = []
    for ticker in tickers:
        stock = next(
            (
                _ticker_directory()[s]
                for s in _SYMBOL_ALIASES.get(ticker, (ticker,))
                if s in _ticker_directory()
            ),
            {},
        )
        industries = stock.get("industries", [])
        sector = next((s for s in _KNOWN_SECTORS if s in industries), "Unknown")
        industry = next((i for i in industries if i not in _KNOWN_SECTORS), "Unknown")
        infos.append(TickerInfo(ticker, stock.get("name", ticker), sector, industry))
    return infos


def sample_earnings(tickers: tuple[str, ...] = SAMPLE_TICKERS) -> list[EarningsDate]:
    path = _package_dir("stocks_earnings_dates") / "data" / "earnings.db"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        wanted = {alias: ticker for ticker in tickers for alias in _SYMBOL_ALIASES.get(ticker, (ticker,))}
        marks = ",".join("?" for _ in wanted)
        rows = connection.execute(
            f"SELECT ticker, earnings_date FROM earnings WHERE ticker IN ({marks})", tuple(wanted)
        ).fetchall()
    finally:
        connection.close()
    unique = {(wanted[t], date.fromisoformat(d[:10])) for t, d in rows}
    return [EarningsDate(t, d, EARNINGS_SOURCE, confirmed=True) for t, d in sorted(unique)]
