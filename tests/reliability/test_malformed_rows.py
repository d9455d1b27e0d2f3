"""Malformed upstream rows mixed into the load (issue 12): NaN and out-of-range confidence, an
unknown action, a 17-character ticker with prices, a 3 KB ticker, tickers unknown, without
prices or with prices two years old. Each must be decided (a skip with the reason) without
holding up the good rows behind it, and no invariant may break."""

from __future__ import annotations

import pytest

from services.trading.soak.driver import SoakPlan
from services.trading.soak.stack import MALFORMED
from services.trading.soak.upstream import GOOD, MALFORMED_KINDS
from tests.reliability.soak_harness import INVARIANT_IDS, assert_holds, soak

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]
ROWS = SoakPlan(
    seconds=30, rate=3, seed=5, faults=(MALFORMED,), malformed_share=0.3, polling_interval_seconds=10
)


@pytest.fixture(scope="module")
def malformed():
    return soak(ROWS)


def test_every_kind_of_malformed_row_was_written(malformed) -> None:
    assert set(malformed.tries) == {GOOD, *MALFORMED_KINDS}


@pytest.mark.parametrize("index", range(len(INVARIANT_IDS)), ids=INVARIANT_IDS)
def test_malformed_rows_keep_the_invariant(malformed, index: int) -> None:
    assert_holds(malformed, index)
