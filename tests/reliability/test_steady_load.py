"""Steady load, no fault (issue 12: the run that booked wrong money): the engine process, the
paper broker and the servers at 3 recommendations a second with moving prices; every
invariant must hold at rest."""

from __future__ import annotations

import pytest

from services.trading.soak.driver import SoakPlan
from tests.reliability.soak_harness import INVARIANT_IDS, assert_holds, soak

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]
# The polling interval is shorter than the default 30 s so that the run settles quickly; a
# full tick still comes only every few dozen recommendations.
STEADY = SoakPlan(seconds=45, rate=3, seed=12, polling_interval_seconds=10)


@pytest.fixture(scope="module")
def steady():
    return soak(STEADY)


def test_the_load_was_traded(steady) -> None:
    assert sum(steady.tries.values()) >= STEADY.seconds * STEADY.rate * 0.8
    assert steady.broker_orders.get("filled", 0) > 20 and steady.closed_trades > 5
    assert steady.write_failures == 0 and not steady.faults


@pytest.mark.parametrize("index", range(len(INVARIANT_IDS)), ids=INVARIANT_IDS)
def test_steady_load_keeps_the_invariant(steady, index: int) -> None:
    assert_holds(steady, index)


def test_the_engine_stops_cleanly_and_never_crashed(steady) -> None:
    assert steady.stopped_cleanly and not steady.engine_exits and steady.engine_starts == 1
