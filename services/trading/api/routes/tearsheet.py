"""GET /api/trading/tearsheet: the one-file HTML tearsheet of `stonks report` (issue 17), of
the live account or of a stored backtest (`?backtest_id=`), as an attachment for the
dashboard's download buttons on the Performance and Backtesting pages."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import Response

from services.trading.api.deps import RuntimeDep, require_read_access
from services.trading.api.errors import UNAUTHORIZED
from services.trading.api.models import ErrorBody
from services.trading.core.trading_window import NEW_YORK

if TYPE_CHECKING:
    from services.trading.reports.tearsheet import Tearsheet

router = APIRouter(
    prefix="/api/trading",
    tags=["performance"],
    dependencies=[Depends(require_read_access)],
    responses=UNAUTHORIZED,
)

# pyplot keeps global state (the current figure): one drawing at a time, off the event loop.
_drawing = threading.Lock()


def _render(sheet: Tearsheet) -> str:
    from services.trading.reports.tearsheet import render_html

    with _drawing:
        return render_html(sheet)


@router.get(
    "/tearsheet",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}}, "description": "The tearsheet, one HTML file."},
        404: {"model": ErrorBody, "description": "No backtest with this id."},
        409: {
            "model": ErrorBody,
            "description": "Nothing to report yet: the backtest is running or failed, "
            "or the account has no end-of-day snapshot.",
        },
    },
    summary="The performance tearsheet of the live account or a stored backtest (an HTML attachment)",
)
async def get_tearsheet(
    runtime: RuntimeDep,
    backtest_id: Annotated[
        UUID | None, Query(description="A stored backtest's id; without it, the live account.")
    ] = None,
) -> Response:
    # Imported here: matplotlib is heavy, and the API starts without it until a tearsheet is asked.
    from services.trading.reports import tearsheet_sources

    try:
        if backtest_id is None:
            today: date = runtime.clock.now().astimezone(NEW_YORK).date()
            sheet = await tearsheet_sources.live_tearsheet(runtime.pool, today)
        else:
            sheet = await tearsheet_sources.backtest_tearsheet(runtime.pool, backtest_id)
    except tearsheet_sources.NoSuchBacktest as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except tearsheet_sources.NothingToReport as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    body = await asyncio.to_thread(_render, sheet)
    name = f"tearsheet-{backtest_id or 'live'}.html"
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
