"""422 answers in FastAPI's own validation shape, so every refusal names the field and the
reason the same way: `{"detail": [{"type", "loc": ["body", field], "msg", "input"}]}`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.trading.api.models import ErrorBody

MAX_ECHOED = 100  # characters of a refused value sent back: enough to recognise it

UNAUTHORIZED = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token; nothing was changed."}
}


def field_error(
    field: str, message: str, value: Any = None, *, where: str = "body"
) -> RequestValidationError:
    return fields_error([field], message, value, where=where)


def fields_error(
    fields: Iterable[str], message: str, value: Any = None, *, where: str = "body"
) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, field), "msg": message, "input": value} for field in fields]
    )


def located(errors: Iterable[dict[str, Any]], where: str = "body") -> RequestValidationError:
    """A pydantic model's errors, located in the request like FastAPI's own."""
    return RequestValidationError([{**e, "loc": (where, *e["loc"])} for e in errors])


async def unreadable_body(request: Request, exc: StarletteHTTPException) -> Response:
    """A body that cannot even be decoded (not UTF-8 JSON) is invalid input like any other:
    422 in the same shape, not FastAPI's bare 400. Every other HTTP error passes through."""
    if exc.status_code == 400 and request.method in ("POST", "PUT", "PATCH"):
        return JSONResponse(
            {
                "detail": [
                    {
                        "type": "json_invalid",
                        "loc": ["body"],
                        "input": None,
                        "msg": "the body is not valid JSON (UTF-8)",
                    }
                ]
            },
            status_code=422,
        )
    return await http_exception_handler(request, exc)


async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, with each refused value echoed in a form JSON can carry: NaN and
    infinities as strings, decimals as strings, long values cut (a 20,000-digit number once
    made the refusal itself fail with a 500)."""
    errors = [{**error, "input": _echo(error.get("input"))} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _echo(value: Any) -> Any:
    if isinstance(value, dict):
        return {_echo(str(k)): _echo(v) for k, v in list(value.items())[:MAX_ECHOED]}
    if isinstance(value, (list, tuple)):
        return [_echo(v) for v in value[:MAX_ECHOED]]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Decimal):
        return _cut(str(value))
    if isinstance(value, (str, bytes)):
        return _cut(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return value


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ECHOED else text[:MAX_ECHOED] + "..."
