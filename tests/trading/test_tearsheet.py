"""The tearsheet (issue 17): its headline figures are the dashboard's, by the same functions,
and the page stands alone with the standard charts and our sections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core import performance_tracker
from services.trading.core.models import ClosedTrade, PortfolioState
from services.trading.reports.tearsheet import Tearsheet, live_headline, render_html

T0 = datetime(2024, 1, 2, 15, tzinfo=UTC)


def trade(pnl: int, micro: bool = False) -> ClosedTrade:
    return ClosedTrade(
        "AAA", Decimal(100), Decimal(100 + pnl), Decimal(1), T0, T0 + timedelta(days=1), None, micro
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(9000, 11000), min_size=2, max_size=60),
    st.lists(st.tuples(st.integers(-20, 20), st.booleans()), max_size=12),
)
def test_headline_is_what_the_dashboard_computes(values, pnls):
    curve = [Decimal(v) for v in values]
    trades = [trade(p, micro) for p, micro in pnls]
    headline = live_headline(curve, trades, curve[0])
    # The dashboard's metrics: compute_metrics on the same curve, closed at the last value.
    m = performance_tracker.compute_metrics(
        portfolio=PortfolioState(positions=(), cash=curve[-1]),
        closed_trades=trades,
        equity_curve=curve[:-1],
        start_of_day_value=curve[-1],
        computed_at=T0,
    ).metrics
    assert headline.max_drawdown == m.max_drawdown
    assert (headline.win_rate, headline.profit_factor, headline.trade_count) == (
        m.win_rate, m.profit_factor, m.trade_count
    )  # fmt: skip
    assert headline.sharpe_ratio == performance_tracker.sharpe_ratio(performance_tracker.daily_returns(curve))


def test_the_page_has_the_charts_and_our_sections():
    days = [date(2024, 1, 2) + timedelta(days=i) for i in range(60)]
    equity = tuple((d, Decimal(10000 + 15 * i - (i % 7) * 40)) for i, d in enumerate(days))
    sheet = Tearsheet(
        title="t",
        subject="s",
        headline=live_headline([v for _, v in equity], [trade(5), trade(-3)], equity[0][1]),
        equity=equity,
        benchmark=tuple((d, 1 + i / 100) for i, d in enumerate(days)),
        benchmark_name="an equal-weight index",
        reserve=tuple((d, Decimal(i)) for i, d in enumerate(days)),
        tier_changes=((days[10], "moderate", "conservative", "win rate 30% < 40%"),),
        skip_reasons=(("correlation", 4),),
    )
    page = render_html(sheet)
    assert page.count("data:image/png;base64,") == 6  # five pyfolio charts and the Reserve Pool
    assert "win rate 30% &lt; 40%" in page and "correlation" in page and "Monthly returns" in page
    assert "http" not in page.split("<body>")[1]  # one file: nothing fetched


def test_the_returns_line_is_named_for_its_subject_not_backtest():
    import matplotlib.pyplot as plt

    from services.trading.reports.tearsheet import plot_cumulative_returns, returns_series

    days = [date(2024, 1, 2) + timedelta(days=i) for i in range(30)]
    returns = returns_series([(d, 100 + i + (i % 3)) for i, d in enumerate(days)])
    bench = returns_series([(d, 1 + i / 200) for i, d in enumerate(days)])
    fig, ax = plt.subplots()
    try:
        plot_cumulative_returns(ax, returns, bench, "Live account")
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
    finally:
        plt.close(fig)
    assert labels == ["Benchmark", "Live account"]
