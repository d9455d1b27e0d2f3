"""Reading a user's own bars from CSV, all or nothing.

Expected header: `ticker,date,open,high,low,close,volume` (daily bars; `date` as YYYY-MM-DD)
or with `ts` (ISO-8601 with a UTC offset) instead of `date` plus an `interval` column of
`1d`, `5m` or `1m`. Every row is checked before anything is written; the first problems are
reported with their line numbers so the user can fix the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from services.trading.core.trading_window import session_times
from services.trading.market.market_data import PriceBar

REQUIRED = ("ticker", "open", "high", "low", "close", "volume")
INTERVALS = ("1d", "5m", "1m")
MAX_REPORTED_PROBLEMS = 10


class CsvImportError(ValueError):
    """The file is not loadable; `str()` lists the problems with line numbers."""


@dataclass(frozen=True, slots=True)
class _Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _price(row: dict[str, str], column: str) -> Decimal:
    try:
        value = Decimal(row[column].strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"{column} {row[column]!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{column} {row[column]!r} must be a positive number")
    return value


def _timestamp(row: dict[str, str], interval: str) -> datetime:
    if row.get("ts"):
        ts = datetime.fromisoformat(row["ts"].strip())
        if ts.tzinfo is None:
            raise ValueError(f"ts {row['ts']!r} needs a UTC offset, e.g. 2024-01-02T21:00:00+00:00")
        return ts
    if interval != "1d":
        raise ValueError("intraday bars need a ts column")
    session = date.fromisoformat(row["date"].strip())
    times = session_times(session)
    if times is None:
        raise ValueError(f"{session} is not an NYSE trading session")
    return times[1]


def _parse_row(row: dict[str, str]) -> PriceBar:
    interval = (row.get("interval") or "1d").strip()
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    ticker = row["ticker"].strip().upper()
    if not ticker:
        raise ValueError("ticker is empty")
    o, h, l, c = (_price(row, column) for column in ("open", "high", "low", "close"))
    if not (l <= min(o, c) and h >= max(o, c)):
        raise ValueError(f"prices are inconsistent: low {l} / high {h} must bracket open {o} and close {c}")
    try:
        volume = int(row["volume"].strip())
    except ValueError:
        raise ValueError(f"volume {row['volume']!r} is not a whole number") from None
    if volume < 0:
        raise ValueError(f"volume {volume} is negative")
    return PriceBar(ticker, interval, _timestamp(row, interval), o, h, l, c, volume)


def read_bars_csv(path: Path) -> list[PriceBar]:
    """Every bar of the file, or `CsvImportError` naming the bad lines."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header] + (
            [] if {"date", "ts"} & set(header) else ["date"]
        )
        if missing:
            raise CsvImportError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        bars, problems, seen = [], [], set()
        for row in reader:
            line = reader.line_num
            try:
                bar = _parse_row(row)
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(_Problem(line, str(exc)))
                continue
            key = (bar.ticker, bar.interval, bar.ts)
            if key in seen:
                problems.append(_Problem(line, f"duplicate bar for {bar.ticker} at {bar.ts:%Y-%m-%d %H:%M}"))
            seen.add(key)
            bars.append(bar)
    if problems:
        shown = "; ".join(str(p) for p in problems[:MAX_REPORTED_PROBLEMS])
        more = (
            f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)"
            if len(problems) > MAX_REPORTED_PROBLEMS
            else ""
        )
        raise CsvImportError(f"{path}: {len(problems)} bad row(s), nothing loaded: {shown}{more}")
    if not bars:
        raise CsvImportError(f"{path}: no bars in the file, nothing loaded")
    return bars
