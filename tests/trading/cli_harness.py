"""What the command line's tests share: a `stonks-trading` command run as its owner runs it, in
a process of its own (`tests/trading/sample_market.py` gives it a market to work on)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`stonks-trading ARGS` with `env` over this process's environment; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "services.trading", *args],
        capture_output=True,
        text=True,
        # Wide enough that help and tables do not wrap the words the tests look for.
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )
