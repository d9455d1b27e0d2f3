"""Dependencies the routes declare (STYLE: injected, not imported globals): the runtime, the
token checks, paging and time ranges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.trading.api.auth import reads_protected, refuse_token
from services.trading.api.errors import field_error
from services.trading.api.inputs import Instant
from services.trading.api.runtime import Runtime

MAX_PAGE = 500


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# Declares the scheme in the OpenAPI document; the check reads the header itself
# (`refuse_token`), as the request guard does for every state change before the body is read.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="STONKS_API_TOKEN, or the token generated on first start (README, 'API').",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check(runtime: Runtime, request: Request) -> None:
    refusal = refuse_token(runtime.token, request.headers.get("authorization"))
    if refusal is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, refusal.detail, headers={"WWW-Authenticate": refusal.challenge}
        )


async def require_token(request: Request, runtime: RuntimeDep, credentials: Credentials) -> None:
    """Every state-changing endpoint (docs/contracts.md section 7)."""
    _check(runtime, request)


async def require_read_access(request: Request, runtime: RuntimeDep, credentials: Credentials) -> None:
    server = request.scope.get("server")
    if reads_protected(runtime.read_access, runtime.api_host, server[0] if server else None):
        _check(runtime, request)


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int


def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


PagingDep = Annotated[Paging, Depends(paging)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: datetime | None
    until: datetime | None


def time_range(
    since: Annotated[
        Instant | None, Query(description="From this instant (inclusive); no offset: UTC.")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="Before this instant (exclusive); no offset: UTC.")
    ] = None,
) -> TimeRange:
    if since is not None and until is not None and until < since:
        raise field_error("until", "until is before since", until.isoformat(), where="query")
    return TimeRange(since, until)


TimeRangeDep = Annotated[TimeRange, Depends(time_range)]
