"""The fault matrix (issue 12): the same load while the engine process is killed with SIGKILL
at random moments and Valkey and PostgreSQL are stopped, killed and restarted under it; every
invariant must hold at rest, and the engine must come back from each fault by itself."""

from __future__ import annotations

import pytest

from services.trading.soak.driver import SoakPlan
from services.trading.soak.stack import EVENT_FAULTS, KILL_ENGINE
from tests.reliability.soak_harness import INVARIANT_IDS, assert_holds, soak

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]
FAULTS = SoakPlan(
    seconds=75, rate=3, seed=7, faults=EVENT_FAULTS, fault_every_seconds=6, polling_interval_seconds=10
)


@pytest.fixture(scope="module")
def faulted():
    return soak(FAULTS)


def test_every_fault_was_injected(faulted) -> None:
    injected = {event.kind for event in faulted.faults}
    assert injected == set(EVENT_FAULTS), f"injected only {sorted(injected)}"
    kills = sum(event.kind == KILL_ENGINE for event in faulted.faults)
    assert faulted.engine_starts >= 1 + kills


@pytest.mark.parametrize("index", range(len(INVARIANT_IDS)), ids=INVARIANT_IDS)
def test_faults_keep_the_invariant(faulted, index: int) -> None:
    assert_holds(faulted, index)


def test_the_engine_never_crashed_and_stops_cleanly_after_the_faults(faulted) -> None:
    assert not faulted.engine_exits, f"the engine process ended by itself: {faulted.engine_exits}"
    assert faulted.stopped_cleanly, "SIGTERM did not stop the engine cleanly after the faults; see its log"
