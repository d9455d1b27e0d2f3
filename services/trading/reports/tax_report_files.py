"""The tax report (`core/tax_report.py`) as files: a CSV of blocks for a spreadsheet, and a
one-file HTML page to read and print. Neither computes: they show the report's figures."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

from services.trading.core.tax_report import Form8949Row, PartTotals, TaxReport

NOT_ADVICE = (
    "Made by stonks-trading from its own tax lots. Not tax advice: it sees only this engine's "
    "account (not your other accounts, whose trades can wash these losses too), and your "
    "broker's Form 1099-B is the record the IRS gets. Check it against that form."
)


def _plain(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _iso(value: date | None) -> str:
    return "" if value is None else value.isoformat()


_ROW_HEADER = [
    "description", "date_acquired", "date_sold", "proceeds", "cost_basis", "code", "adjustment",
    "gain_or_loss", "term", "holding_period_start", "lot_ids",
]  # fmt: skip


def _row_cells(row: Form8949Row) -> list[str]:
    return [
        row.description,
        _iso(row.date_acquired),
        _iso(row.date_sold),
        _plain(row.proceeds),
        _plain(row.cost_basis),
        row.code,
        _plain(row.adjustment) if row.code else "",
        _plain(row.gain),
        row.term.value,
        _iso(row.holding_period_start),
        " ".join(str(i) for i in row.lot_ids),
    ]


def _total_cells(totals: PartTotals) -> list[str]:
    return [
        f"Form 8949 Part {'I' if totals.term.value == 'short' else 'II'} ({totals.term.value} term)",
        f"Schedule D line {totals.schedule_d_lines}",
        str(totals.rows),
        _plain(totals.proceeds),
        _plain(totals.cost_basis),
        _plain(totals.adjustment),
        _plain(totals.gain),
    ]


def to_csv(report: TaxReport) -> str:
    """Blocks, each a title line, a header and its rows, a blank line between: the Form 8949
    rows (both terms, the `term` column tells), the Schedule D totals, the lots open at year
    end, the pending wash-sale deferrals and the losses not yet settled."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")

    def block(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        w.writerow([title])
        w.writerow(header)
        w.writerows(rows)
        w.writerow([])

    w.writerow([f"Tax report {report.year}", f"year end {report.year_end}", f"made {report.as_of}"])
    w.writerow([NOT_ADVICE])
    w.writerow([])
    block("Form 8949", _ROW_HEADER, (_row_cells(r) for r in report.rows))
    block(
        "Schedule D",
        ["part", "schedule_d_line", "rows", "proceeds", "cost_basis", "adjustment", "gain_or_loss"],
        [_total_cells(report.short_totals), _total_cells(report.long_totals)],
    )
    block(
        f"Open lots at {report.year_end}",
        ["ticker", "quantity", "date_acquired", "holding_period_start", "adjusted_basis", "deferred_loss",
         "price", "price_date", "market_value", "unrealized_gain", "term_if_sold", "lot_id"],
        ([r.ticker, str(r.quantity), _iso(r.date_acquired), _iso(r.holding_period_start),
          _plain(r.adjusted_basis), _plain(r.deferred_loss), "" if r.price is None else str(r.price),
          _iso(r.price_date), _plain(r.market_value), _plain(r.unrealized_gain), r.term_if_sold.value,
          str(r.lot_id)] for r in report.open_lots),
    )  # fmt: skip
    block(
        f"Wash-sale losses deferred at {report.year_end}",
        ["ticker", "sale_date", "replacement_acquired", "quantity", "amount", "sale_lot_id"],
        ([d.ticker, _iso(d.sale_date), _iso(d.replacement_acquired), str(d.quantity), _plain(d.amount),
          str(d.sale_lot_id)] for d in report.pending_deferrals),
    )  # fmt: skip
    block(
        "Losses a purchase may still wash",
        ["ticker", "date_sold", "quantity", "loss", "window_ends", "lot_id"],
        ([u.ticker, _iso(u.date_sold), str(u.quantity), _plain(u.loss), _iso(u.window_ends), str(u.lot_id)]
         for u in report.unsettled_losses),
    )  # fmt: skip
    return out.getvalue()


# -- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1e293b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #cbd5e1; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { padding: .25rem .5rem; border-bottom: 1px solid #e2e8f0; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; border-top: 2px solid #94a3b8; }
.note { background: #fef9c3; padding: .6rem .8rem; border-radius: .3rem; }
.muted { color: #64748b; }
@media print { body { margin: 0; max-width: none; } }
"""


def _money(value: Decimal | None) -> str:
    """IRS style: a loss in parentheses."""
    if value is None:
        return "&ndash;"
    return f"({-value:,.2f})" if value < 0 else f"{value:,.2f}"


def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int], foot: Sequence[str] = ()
) -> str:
    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f"<{tag}{' class=n' if i in numeric else ''}>{v}</{tag}>" for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows) or (
        f"<tr><td colspan={len(header)} class=muted>none</td></tr>"
    )
    footer = f"<tfoot><tr>{cells('td', foot)}</tr></tfoot>" if foot else ""
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody>{footer}</table>"


def _part(title: str, rows: Sequence[Form8949Row], totals: PartTotals) -> str:
    header = ["(a) Description", "(b) Acquired", "(c) Sold", "(d) Proceeds", "(e) Cost basis", "(f) Code",
              "(g) Adjustment", "(h) Gain or (loss)", "Holding period from"]  # fmt: skip
    body = (
        [html.escape(r.description), _iso(r.date_acquired), _iso(r.date_sold), _money(r.proceeds),
         _money(r.cost_basis), r.code, _money(r.adjustment) if r.code else "", _money(r.gain),
         _iso(r.holding_period_start) if r.holding_period_start != r.date_acquired else ""]
        for r in rows
    )  # fmt: skip
    foot = [f"Totals ({totals.rows} rows): Schedule D line {totals.schedule_d_lines}", "", "",
            _money(totals.proceeds), _money(totals.cost_basis), "", _money(totals.adjustment),
            _money(totals.gain), ""]  # fmt: skip
    return f"<h2>{title}</h2>" + _table(header, body, {3, 4, 6, 7}, foot)


def to_html(report: TaxReport) -> str:
    r = report
    summary = _table(
        ["", "Proceeds", "Cost basis", "Adjustments", "Gain or (loss)"],
        [
            [f"Short term (Part I, Schedule D line {r.short_totals.schedule_d_lines})",
             _money(r.short_totals.proceeds), _money(r.short_totals.cost_basis),
             _money(r.short_totals.adjustment), _money(r.short_totals.gain)],
            [f"Long term (Part II, Schedule D line {r.long_totals.schedule_d_lines})",
             _money(r.long_totals.proceeds), _money(r.long_totals.cost_basis),
             _money(r.long_totals.adjustment), _money(r.long_totals.gain)],
        ],
        {1, 2, 3, 4},
        ["Net gain or (loss) of this account", "", "", "", _money(r.net_gain)],
    )  # fmt: skip
    open_lots = _table(
        ["Ticker", "Quantity", "Acquired", "Holding period from", "Adjusted basis", "of it deferred loss",
         "Close", "Market value", "Unrealised gain or (loss)", "Term if sold"],
        ([html.escape(o.ticker), html.escape(str(o.quantity)), _iso(o.date_acquired), _iso(o.holding_period_start),
          _money(o.adjusted_basis), _money(o.deferred_loss),
          f"{o.price} ({_iso(o.price_date)})" if o.price is not None else "&ndash;",
          _money(o.market_value), _money(o.unrealized_gain), o.term_if_sold.value]
         for o in r.open_lots),
        {1, 4, 5, 7, 8},
        ["Total", "", "", "", _money(sum((o.adjusted_basis for o in r.open_lots), Decimal(0))), "", "", "",
         _money(r.unrealized_gain), ""],
    )  # fmt: skip
    deferrals = _table(
        ["Ticker", "Loss sold", "Replacement bought", "Shares carrying it", "Deferred loss"],
        ([html.escape(d.ticker), _iso(d.sale_date), _iso(d.replacement_acquired), html.escape(str(d.quantity)),
          _money(d.amount)] for d in r.pending_deferrals),
        {3, 4},
        ["Total", "", "", "", _money(r.pending_deferred)],
    )  # fmt: skip
    unsettled = (
        "<h2>Losses a purchase may still wash</h2><p>Sold in the year's last 30 days: buying the "
        "same ticker up to the date shown would disallow them (this report would then change).</p>"
        + _table(
            ["Ticker", "Sold", "Quantity", "Loss", "Window ends"],
            (
                [
                    html.escape(u.ticker),
                    _iso(u.date_sold),
                    html.escape(str(u.quantity)),
                    _money(u.loss),
                    _iso(u.window_ends),
                ]
                for u in r.unsettled_losses
            ),
            {2, 3},
        )  # fmt: skip
        if r.unsettled_losses
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tax report {r.year}</title><style>{_STYLE}</style></head>
<body>
<h1>Tax report {r.year}: capital gains and losses of the trading account</h1>
<p class=muted>Year end {r.year_end}{" (the year is not over)" if r.year_end.year == r.year and r.year_end < date(r.year, 12, 31) else ""}; made {r.as_of}. Amounts in US dollars; losses in parentheses.</p>
<p class=note>{html.escape(NOT_ADVICE)}</p>
<h2>Schedule D totals</h2>{summary}
{_part("Form 8949 Part I: short term (held one year or less)", r.short_term, r.short_totals)}
{_part("Form 8949 Part II: long term (held more than one year)", r.long_term, r.long_totals)}
<p class=muted>Code W: a wash sale; the adjustment (g) is the disallowed loss, added to the basis of the
replacement shares. "Holding period from" is shown when a wash sale moved it before the date acquired.</p>
<h2>Lots open at {r.year_end}</h2>{open_lots}
<h2>Wash-sale losses deferred at {r.year_end}</h2>
<p>Disallowed losses carried in the basis of replacement shares not yet sold: they count when those are.</p>
{deferrals}
{unsettled}
</body></html>
"""
