"""Entries in tranches in the backtest count as the live engine counts them (issue 13).

Four tickers of one sector, each bought in three tranches a session apart (aggressive tier,
confidence 1.0, a flat $10,000 book at $100 a share, 50% sector cap = $5,000). Each decision
sees the earlier entries whole, their unfilled tranches included (`unfilled_orders`, as the
engine counts its outbox), so the cap binds at the decision: A, B and C are decided for
15 + 14 + 14 = 43 shares ($4,300), and D for the 7 shares of the $700 left. No later tranche
then needs cutting, and the sector ends exactly at its cap.
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
    assert held <= Decimal("0.5") * result.metrics.final_value == 5000


def test_each_decision_sees_the_unfilled_tranches_before_it() -> None:
    result = _run()
    decided = {d.ticker: d.quantity for d in result.decisions}
    assert decided["D"] == (5000 - 100 * (decided["A"] + decided["B"] + decided["C"])) / 100 == 7
    assert {p.ticker: p.quantity for p in result.open_positions} == decided  # every tranche bought
    assert not [e for e in result.events if e.kind in ("tranche_cut", "tranche_cancelled")]
