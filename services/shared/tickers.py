"""What a ticker symbol may be: one definition for everything that checks, stores or sends one.

The order job on the broker queue (`orders.OrderJob`) and the engine's check of upstream
recommendations (`services/trading/core/upstream_fields.py`) both use it, so a recommendation the
engine accepts can always become an order job (issue 12: a 17-character ticker with prices was
decided, then refused by the order job on every tick). The `ticker` columns are plain `text`;
their indexes refuse an entry over about 2.7 KB, far above this limit.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

TICKER_MAX_LENGTH = 16
TICKER_CHARACTERS = "A-Z, 0-9, '.' and '-'"
_SYMBOL = rf"[A-Z0-9][A-Z0-9.\-]{{0,{TICKER_MAX_LENGTH - 1}}}"
_SYMBOL_RE = re.compile(_SYMBOL)

# For pydantic models: `$` is the end of the text in pydantic's (Rust) regex, unlike Python's.
Ticker = Annotated[str, StringConstraints(pattern=rf"^{_SYMBOL}$")]


def is_ticker(value: object) -> bool:
    """A symbol of 1 to 16 characters: capital letters, digits, '.' and '-', not starting
    with a punctuation mark."""
    return isinstance(value, str) and _SYMBOL_RE.fullmatch(value) is not None
