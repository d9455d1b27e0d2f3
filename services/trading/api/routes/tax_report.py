"""GET /api/trading/tax-report: the year's Form 8949 rows, Schedule D totals, lots open at
year end and pending wash-sale deferrals (issue 17); /tax-report/download: the same as a CSV
or a printable HTML page, for the dashboard's download link."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from services.trading.api.deps import RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED, field_error
from services.trading.api.runtime import Runtime
from services.trading.api.tax_report_models import TaxReportView
from services.trading.core.tax_report import TaxReport
from services.trading.core.trading_window import NEW_YORK
from services.trading.live import tax_report_source
from services.trading.reports import tax_report_files

router = APIRouter(
    prefix="/api/trading",
    tags=["portfolio"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)

Year = Annotated[int, Query(ge=1900, le=9999, description="The tax year; not one still to come.")]
MEDIA = {"csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


async def _report(runtime: Runtime, year: int) -> TaxReport:
    today: date = runtime.clock.now().astimezone(NEW_YORK).date()
    if year > today.year:
        raise field_error("year", f"the year {year} has not begun (today is {today})", year, where="query")
    return await tax_report_source.tax_report(runtime.pool, year, today)


@router.get(
    "/tax-report",
    response_model=TaxReportView,
    summary="The year's realised gains as Form 8949 rows and Schedule D totals, open lots, wash-sale deferrals",
)
async def tax_report(runtime: RuntimeDep, year: Year) -> TaxReportView:
    return TaxReportView.of(await _report(runtime, year), tax_report_files.NOT_ADVICE)


@router.get(
    "/tax-report/download",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "text/html": {}}, "description": "The report as a file."}},
    summary="The year's tax report as a CSV or a printable HTML page (an attachment)",
)
async def download_tax_report(
    runtime: RuntimeDep,
    year: Year,
    format: Annotated[Literal["csv", "html"], Query(description="csv or html.")] = "html",
) -> Response:
    report = await _report(runtime, year)
    body = tax_report_files.to_csv(report) if format == "csv" else tax_report_files.to_html(report)
    return Response(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="tax-report-{year}.{format}"'},
    )
