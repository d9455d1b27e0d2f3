"""What the API accepts as a number or an instant, in one place (issue 12, defect 8).

- Bodies are parsed exactly (`ExactJsonRoute`): a JSON number with a fraction or an exponent
  becomes a `Decimal`, never a float rounded (0.999...9 to 1.0) or overflowed (1e400 to
  infinity); an integer too long for Python's int conversion becomes a `Decimal` too; NaN and
  Infinity stay non-finite floats. Each then meets the field's own type, which refuses it and
  names the field, instead of the request failing whole.
- Counts and switches take JSON's own integers and booleans (`JsonInt`, `JsonBool`): `true`
  is not 1, and `1` or `"yes"` is not true.
- Decimals are finite and bounded (`InputDecimal`, then each field's own range): PostgreSQL's
  `numeric` stores them exactly, where asyncpg writes 0 for 1e131072 and refuses more than
  16,383 fractional digits.
- Dates and instants are ISO 8601 (`IsoDate`, `Instant`), never numbers read as Unix times;
  an instant must exist in UTC: 0001-01-01T00:00+14:00 does not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BeforeValidator, Field, Strict

# The largest amount any input names, and its significant digits: money up to 1e12 to the
# hundred-millionth, fractions to 1e-24. Far inside what `numeric` and asyncpg's encoding of it
# hold; a field's own range narrows it.
MAX_DECIMAL = Decimal("1e12")
MAX_DIGITS = 24

JsonInt = Annotated[int, Strict()]
JsonBool = Annotated[bool, Strict()]


def _storable(value: Decimal) -> Decimal:
    # Checked after the field's own range (a validator, not constraints: pydantic would let
    # these replace the field's narrower `le` and `max_digits`). Exact arithmetic only: abs()
    # and normalize() round to 28 digits.
    if not -MAX_DECIMAL <= value <= MAX_DECIMAL:
        raise ValueError(f"must be between -{MAX_DECIMAL:f} and {MAX_DECIMAL:f}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: refused before, by allow_inf_nan
    if value.is_zero():
        return value if exponent >= -MAX_DIGITS else Decimal(0)
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
    exponent += len(digits) - kept
    if max(kept, -exponent) > MAX_DIGITS:
        raise ValueError(f"must have at most {MAX_DIGITS} significant digits")
    # 0.5 followed by 20,000 zeros is 0.5, and is stored as 0.5 (numeric holds 16,383 places).
    return value if value.as_tuple().exponent >= -MAX_DIGITS else Decimal((sign, digits[:kept], exponent))


InputDecimal = Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_storable)]


def _integer(text: str) -> int | Decimal:
    # Python refuses to convert more than sys.get_int_max_str_digits() (4,300) digits; the
    # number is still a number, to be refused by the field it was sent for.
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def exact_json(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal, parse_int=_integer)


class ExactJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            parsed = exact_json(await self.body())
            # Every body these routes take is an object. FastAPI reads a falsy body (a 0, or a
            # number too small to store) as no body at all, and an empty update is valid: a
            # number sent for the whole body was answered 200 (found by schemathesis).
            if not isinstance(parsed, dict):
                raise ValueError("the request body must be a JSON object")
            self._json = parsed
        return self._json


class ExactJsonRoute(APIRoute):
    """A route whose JSON body is parsed by `exact_json`: every router that takes a body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact


def _iso_8601(value: Any) -> Any:
    # Not pydantic's lax parsing, which reads "-5.9e-08" as a Unix time (found by schemathesis).
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("give an ISO 8601 instant, e.g. 2024-03-01T14:30:00Z") from None
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("give an ISO 8601 date, e.g. 2024-03-01") from None
    return value


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # documented: an instant without an offset is UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("this instant is outside the calendar (years 1 to 9999) in UTC") from None


Instant = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(_in_utc)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
