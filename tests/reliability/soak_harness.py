"""The reliability suite (issue 12): the real stack soaked and hurt, then judged by the
invariants of services/trading/soak/invariants.py.

Each module runs one soak (module-scoped: one run, one test per invariant, so a failure names
the invariant and quotes the rows that break it). Every soak starts its own private
PostgreSQL and Valkey, whatever STONKS_TEST_* says: it kills and restarts them. The long soak
is `stonks-trading soak` (bench/soak/README.md).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from services.trading.soak.driver import SoakPlan, run_soak
from services.trading.soak.invariants import INVARIANTS
from services.trading.soak.report import SoakReport

INVARIANT_IDS = [invariant.__name__ for invariant in INVARIANTS]


def soak(plan: SoakPlan) -> SoakReport:
    # Not under pytest's temporary directories, which another pytest run may prune meanwhile.
    directory = Path(tempfile.mkdtemp(prefix="stonks-soak-"))
    try:
        return asyncio.run(run_soak(plan, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def assert_holds(report: SoakReport, index: int) -> None:
    result = report.invariants[index]
    context = "\n".join(report.text().splitlines()[:4])
    assert result.passed, f"{result.describe()}\n\nthe run:\n{context}\n" + "\n".join(report.notes)
