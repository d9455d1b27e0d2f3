"""Decision core II does no network I/O (issue #4; STYLE principle 1).

Like `test_decision_core_no_io.py` for the first half of the core: a fresh interpreter with
socket creation disabled imports correlation, tax lots, rebalancer, performance tracker,
entry guards and micro-trading and runs each once.
"""

from __future__ import annotations

from tests.trading.no_network import run_without_network

SCRIPT = """
    from datetime import date, datetime, timedelta, timezone
    from decimal import Decimal as D

    from services.shared.schemas import RiskTierName, TrendWindow
    from services.trading.core import correlation, entry_guards, micro_trading, performance_tracker, rebalancer, \\
        tax_lots
    from services.trading.core.models import RISK_TIER_DEFAULTS, CircuitBreakerState, ClosedTrade, OpenPosition, \\
        PortfolioState
    from services.trading.core.position_sizer import PositionSizer

    now = datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)
    held = OpenPosition("AAA", D(10), D(100), D(99), "Tech", D(90), D(120), D("0.7"), True, now - timedelta(hours=3))
    portfolio = PortfolioState(positions=(held,), cash=D(10000), reserve_pool=D(500))
    tier = RISK_TIER_DEFAULTS[RiskTierName.MODERATE]
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]
    matrix = correlation.compute_correlation_matrix(
        {"AAA": {d: 100 + i % 7 for i, d in enumerate(days)}, "BBB": {d: 50 + i % 5 for i, d in enumerate(days)}},
        as_of=days[-1])
    matrix.get_portfolio_correlation("BBB", portfolio.positions)
    book = tax_lots.record_entry(tax_lots.TaxLotBook(), ticker="AAA", quantity=D(10), price=D(100),
                                 trade_date=days[0]).book
    tax_lots.close_lots_fifo(book, ticker="AAA", quantity=D(5), price=D(90), trade_date=days[1])
    rebalancer.evaluate(portfolio, tier, within_trading_window=True, circuit_breaker_active=False)
    trade = ClosedTrade("AAA", D(100), D(110), D(1), now - timedelta(days=1), now)
    performance_tracker.compute_metrics(portfolio=portfolio, closed_trades=[trade], equity_curve=[D(10000), D(10100)],
                                        start_of_day_value=D(10000), computed_at=now)
    entry_guards.check_declining_positions(portfolio.positions)
    decision = micro_trading.evaluate_micro_trade(
        micro_trading.MicroTradeRequest("NEW", "Health", D("0.8"), D(25), D("0.3"), TrendWindow.INTRADAY),
        portfolio=portfolio, tier=tier, sizer=PositionSizer(matrix), breakers=CircuitBreakerState(),
        micro_trades_today=0, now=now, settings=micro_trading.MicroTradingSettings(enabled=True))
    assert decision.approved, decision.reason
    assert micro_trading.positions_to_auto_close(portfolio.positions, now)
    print("no-io-ok")
"""


def test_decision_core_ii_runs_without_network() -> None:
    run_without_network(SCRIPT)
