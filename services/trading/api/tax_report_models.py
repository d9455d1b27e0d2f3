"""The year's tax report as the API gives it (issue 17): the same figures as
`core/tax_report.py`, in the API's conventions (money as decimal strings)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Literal

from pydantic import Field

from services.trading.api.models import ApiModel, Dec
from services.trading.core.tax_report import TaxReport

Term = Literal["short", "long"]


class Form8949RowView(ApiModel):
    lot_ids: list[int] = Field(description="The lot pieces the row sums (GET /tax-lots has them).")
    ticker: str
    quantity: Dec
    description: str = Field(description="Form 8949 column (a).")
    date_acquired: date
    date_sold: date
    proceeds: Dec = Field(description="(d): price × quantity less the selling costs, in cents.")
    cost_basis: Dec = Field(description="(e): with the purchase fees and any washed loss moved in.")
    code: Literal["W", ""] = Field(description="(f): W for a wash sale.")
    adjustment: Dec = Field(description="(g): the disallowed loss, positive; 0 without a code.")
    gain: Dec = Field(description="(h) = proceeds − cost_basis + adjustment.")
    term: Term
    holding_period_start: date = Field(description="Before date_acquired when a wash sale tacked on.")


class PartTotalsView(ApiModel):
    term: Term
    schedule_d_lines: str = Field(
        description="The Schedule D line, by the box the broker's 1099-B calls for."
    )
    rows: int
    proceeds: Dec
    cost_basis: Dec
    adjustment: Dec
    gain: Dec


class OpenLotRowView(ApiModel):
    lot_id: int
    ticker: str
    quantity: Dec
    date_acquired: date
    holding_period_start: date
    adjusted_basis: Dec
    deferred_loss: Dec = Field(description="The part of adjusted_basis a wash sale moved in.")
    price: Dec | None = Field(description="The last daily close on or before year end; null when none.")
    price_date: date | None
    market_value: Dec | None
    unrealized_gain: Dec | None
    term_if_sold: Term


class PendingDeferralView(ApiModel):
    ticker: str
    sale_lot_id: int
    sale_date: date
    replacement_acquired: date
    quantity: Dec
    amount: Dec


class UnsettledLossView(ApiModel):
    lot_id: int
    ticker: str
    quantity: Dec
    date_sold: date
    loss: Dec
    window_ends: date = Field(
        description="A purchase of the ticker up to this day would still wash the loss."
    )


class TaxReportView(ApiModel):
    year: int
    as_of: date
    year_end: date = Field(description="31 December, or as_of while the year is not over.")
    short_term: list[Form8949RowView]
    long_term: list[Form8949RowView]
    short_totals: PartTotalsView
    long_totals: PartTotalsView
    net_gain: Dec
    open_lots: list[OpenLotRowView]
    unrealized_gain: Dec
    pending_deferrals: list[PendingDeferralView]
    pending_deferred: Dec
    unsettled_losses: list[UnsettledLossView]
    not_covered: str = Field(description="What the report does not cover.")

    @classmethod
    def of(cls, report: TaxReport, not_covered: str) -> TaxReportView:
        return cls.model_validate(
            {
                **asdict(report),
                "net_gain": report.net_gain,
                "unrealized_gain": report.unrealized_gain,
                "pending_deferred": report.pending_deferred,
                "not_covered": not_covered,
            }
        )
