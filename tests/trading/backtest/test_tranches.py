"""A later tranche in the backtest meets the core's tranche check (issue 13), as it does live.

Four tickers of one sector, each bought in three tranches a session apart (aggressive tier,
confidence 1.0: about $1,500 each of a flat $10,000 book, 50% sector cap = $5,000). Each
decision sees only the first tranches already bought, so together the four entries were
decided for $5,700 of the sector: the later tranches that no longer fit are cut or
refused, and the sector never holds more than its cap (by hand: 15 + 14 + 14 + 14 shares decided;
the first two tranches of each, 40 shares, leave room for 10:
A's 5, B's 4, then 1 of C's 4 and none of D's).
"""

from __future__ import annotations

from decimal import Decimal

from services.shared.schemas import RiskTierName
from services.trading.core.gradual_entry import GradualEntrySettings
from tests.trading.backtest.bars import WARMUP, flat, market, rec, run

TICKERS = ("A", "B", "C", "D")


def _run():
    # Ends at E+2, the Friday of the last tranches: before Monday's rebalance could trim the sector.
    series = {t: flat(100, WARMUP + 3) for t in TICKERS}
    recs = [rec(i, t, WARMUP - 1, confidence=1.0) for i, t in enumerate(TICKERS, start=1)]
    result = run(
        market(series, sectors=dict.fromkeys(TICKERS, "Technology")),
        recs,
        tier=RiskTierName.AGGRESSIVE,
        gradual=GradualEntrySettings(),
    )
    assert result.completed, result.error
    return result


def test_the_sector_never_holds_more_than_its_cap() -> None:
    result = _run()
    held = sum(p.quantity * p.entry_price for p in result.open_positions)
    assert sum(d.quantity for d in result.decisions) * 100 == 5700  # 15 + 14 + 14 + 14 shares decided
    assert held <= Decimal("0.5") * result.metrics.final_value == 5000


def test_the_last_tranches_are_cut_then_refused_with_the_sectors_reason() -> None:
    # Tranches 3 at E+2, $4,000 held before: A's 5 and B's 4 fit, C's 4 are cut to the $100
    # left, D's 4 find the sector full.
    result = _run()
    shares = {p.ticker: p.quantity for p in result.open_positions}
    assert shares == {"A": 15, "B": 14, "C": 11, "D": 10}
    [cut] = [e for e in result.events if e.kind == "tranche_cut"]
    [refused] = [e for e in result.events if e.kind == "tranche_cancelled"]
    assert cut.ticker == "C" and "position cut to $100.00" in cut.detail
    assert refused.ticker == "D" and refused.detail.startswith("tranche 3 of 3: sector 'Technology' already")
