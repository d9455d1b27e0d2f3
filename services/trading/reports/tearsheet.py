"""A one-file HTML tearsheet of the live account or a stored backtest (issue 17).

pyfolio-reloaded draws the standard charts (returns against the benchmark, drawdown periods,
monthly returns heatmap, rolling Sharpe and volatility); we add the Reserve Pool over time,
the tier history, the breaker events and the skip reasons. The headline figures are not
pyfolio's: they come from `core/performance_tracker.py`, the functions behind the dashboard,
so the two say the same. Charts are PNGs inlined as data URLs: the file stands alone.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import matplotlib

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
import pandas as pd

from services.trading.core import performance_tracker
from services.trading.core.models import ClosedTrade


@dataclass(frozen=True, slots=True)
class Headline:
    """The figures the dashboard shows, by the same functions."""

    final_value: Decimal
    total_return: float
    sharpe_ratio: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    trade_count: int


def live_headline(curve: Sequence[Decimal], trades: Sequence[ClosedTrade], start_value: Decimal) -> Headline:
    """As the dashboard's Performance page computes them from the end-of-day curve and the
    standard (not micro) closed trades."""
    standard = [t for t in trades if not t.is_micro_trade]
    return Headline(
        final_value=curve[-1] if curve else start_value,
        total_return=float(curve[-1] / start_value - 1) if curve and start_value > 0 else 0.0,
        sharpe_ratio=performance_tracker.sharpe_ratio(performance_tracker.daily_returns(curve)),
        max_drawdown=performance_tracker.max_drawdown(curve),
        win_rate=performance_tracker.win_rate(standard),
        profit_factor=performance_tracker.profit_factor(standard),
        trade_count=len(standard),
    )


@dataclass(frozen=True, slots=True)
class Tearsheet:
    title: str
    subject: str  # what it covers, in words
    headline: Headline
    equity: tuple[tuple[date, Decimal], ...]  # end-of-day value, oldest first
    benchmark: tuple[tuple[date, float], ...]  # the benchmark's level by day
    benchmark_name: str
    reserve: tuple[tuple[date, Decimal], ...] = ()  # Reserve Pool by day; empty when not recorded
    tier_changes: tuple[tuple[date, str, str, str], ...] = ()  # day, from, to, why
    breaker_events: tuple[tuple[date, str, str], ...] = ()  # day, trigger, reason
    skip_reasons: tuple[tuple[str, int], ...] = ()  # reason, how many
    notes: tuple[str, ...] = field(default=())
    # The legend's name for the returns line: pyfolio calls every in-sample line "Backtest",
    # which the live account's is not.
    returns_label: str = "Backtest"


def returns_series(levels: Sequence[tuple[date, float | Decimal]]) -> pd.Series:
    """Daily simple returns of a level series, indexed by day (UTC, as pyfolio wants)."""
    s = pd.Series(
        [float(v) for _, v in levels],
        index=pd.DatetimeIndex([pd.Timestamp(d) for d, _ in levels], tz="UTC"),
        dtype=float,  # an empty benchmark too
    )
    return s.pct_change().dropna()


def _png(draw) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def plot_cumulative_returns(ax, returns: pd.Series, bench: pd.Series, label: str) -> None:
    """pyfolio's cumulative returns chart, its returns line named `label` (pyfolio fixes
    "Backtest"): the legend is drawn by us, after renaming."""
    from pyfolio import plotting

    plotting.plot_rolling_returns(returns, factor_returns=bench.rename("Benchmark"), ax=ax, legend_loc=None)
    for line in ax.get_lines():
        if line.get_label() == "Backtest":
            line.set_label(label)
    ax.legend(loc="best", frameon=True, framealpha=0.5)


def _charts(sheet: Tearsheet) -> list[tuple[str, str]]:
    from pyfolio import plotting  # imported late: it is heavy, and only the report needs it

    returns = returns_series(sheet.equity)
    bench = returns_series(sheet.benchmark).reindex(returns.index).fillna(0.0)
    if len(returns) < 2:
        return []
    window = min(126, max(len(returns) // 4, 5))
    charts = [
        (f"Cumulative returns against {sheet.benchmark_name}",
         _png(lambda ax: plot_cumulative_returns(ax, returns, bench, sheet.returns_label))),
        ("Top drawdown periods", _png(lambda ax: plotting.plot_drawdown_periods(returns, top=5, ax=ax))),
        ("Monthly returns (%)", _png(lambda ax: plotting.plot_monthly_returns_heatmap(returns, ax=ax))),
        (f"Rolling Sharpe ({window} sessions)",
         _png(lambda ax: plotting.plot_rolling_sharpe(returns, rolling_window=window, ax=ax))),
        (f"Rolling volatility ({window} sessions) against {sheet.benchmark_name}",
         _png(lambda ax: plotting.plot_rolling_volatility(returns, factor_returns=bench, rolling_window=window, ax=ax))),
    ]  # fmt: skip
    if sheet.reserve:
        days = [d for d, _ in sheet.reserve]
        charts.append(
            (
                "Reserve Pool",
                _png(lambda ax: (ax.plot(days, [float(v) for _, v in sheet.reserve]), ax.set_ylabel("$"))),
            )
        )
    return charts


def _drawdown_table(sheet: Tearsheet) -> str:
    from pyfolio import timeseries

    returns = returns_series(sheet.equity)
    if len(returns) < 2 or (returns >= 0).all():
        return "<p class=muted>No drawdown.</p>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = timeseries.gen_drawdown_table(returns, top=5).dropna(how="all")
    return table.to_html(classes="grid", na_rep="open", float_format=lambda v: f"{v:.2f}")


def _rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<table class=grid><tr>{head}</tr>{body or f'<tr><td colspan={len(header)}>none</td></tr>'}</table>"
    )


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #1e293b; }
h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #cbd5e1; }
.stats { display: grid; grid-template-columns: repeat(4, 1fr); gap: .5rem; }
.stats div { background: #f1f5f9; padding: .5rem; border-radius: .3rem; }
.stats b { display: block; font-size: 1.2rem; }
table.grid { border-collapse: collapse; width: 100%; } .grid td, .grid th { padding: .2rem .5rem;
border-bottom: 1px solid #e2e8f0; text-align: left; } img { max-width: 100%; } .muted { color: #64748b; }
"""


def render_html(sheet: Tearsheet) -> str:
    h = sheet.headline
    pf = "infinite" if h.profit_factor == float("inf") else f"{h.profit_factor:.2f}"
    stats = [
        ("Final value", f"${h.final_value:,.2f}"), ("Total return", f"{h.total_return:+.2%}"),
        ("Sharpe", f"{h.sharpe_ratio:.2f}"), ("Max drawdown", f"{h.max_drawdown:.2%}"),
        ("Win rate", f"{h.win_rate:.1%}"), ("Profit factor", pf), ("Closed trades", str(h.trade_count)),
        ("Sessions", str(len(sheet.equity))),
    ]  # fmt: skip
    cards = "".join(f"<div>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in stats)
    charts = "".join(f"<h2>{html.escape(t)}</h2>{img}" for t, img in _charts(sheet))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in sheet.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(sheet.title)}</title><style>{_STYLE}</style></head>
<body><h1>{html.escape(sheet.title)}</h1><p class=muted>{html.escape(sheet.subject)}</p>
<div class=stats>{cards}</div>
<ul class=muted>{notes}</ul>
{charts}
<h2>Worst drawdowns</h2>{_drawdown_table(sheet)}
<h2>Risk tier changes</h2>{_rows(["session", "from", "to", "why"], sheet.tier_changes)}
<h2>Circuit breaker events</h2>{_rows(["day", "trigger", "reason"], sheet.breaker_events)}
<h2>Why recommendations were skipped</h2>{_rows(["reason", "times"], sheet.skip_reasons)}
</body></html>
"""
