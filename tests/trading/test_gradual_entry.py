"""Gradual entry (seed task 12.2/12.4, property 21; docs/contracts.md section 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.gradual_entry import (
    GradualEntrySettings,
    TrancheStatus,
    cancel_remaining,
    mark_submitted,
    plan_entry,
    should_use_gradual_entry,
    split_into_tranches,
)

D = Decimal
NOW = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)


def decimals(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), decimals("0.5", "500", 2), decimals("0", "100000", 2), st.integers(1, 6))
def test_property_21_tranche_splitting(shares: int, price: Decimal, active_pool: Decimal, count: int) -> None:
    """Property 21: above min($30, 5% of Active Pool) the order is split into the configured
    number of tranches (fewer only when there are fewer shares), sizes differ by at most one
    share, sum to the whole, none is empty, all carry the parent decision id, 30 min apart;
    at or below the threshold it goes as a single order."""
    config = GradualEntrySettings(tranche_count=count)
    plan = plan_entry("decision-42", "XYZ", shares, price, active_pool, NOW, config)
    tranches = plan.tranches
    above = shares * price > min(D(30), active_pool * D("0.05"))
    assert should_use_gradual_entry(shares * price, active_pool, config) is above
    assert len(tranches) == (min(count, shares) if above else 1)
    sizes = [t.quantity for t in tranches]
    assert sum(sizes) == shares and min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert all(t.parent_decision_id == "decision-42" and t.count == len(tranches) for t in tranches)
    assert [t.index for t in tranches] == list(range(1, len(tranches) + 1))
    assert [t.scheduled_at for t in tranches] == [
        NOW + timedelta(minutes=30) * i for i in range(len(tranches))
    ]
    assert all(t.status is TrancheStatus.PENDING for t in tranches)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 50_000_000), st.integers(1, 6))
def test_property_21_with_fractional_shares(units: int, count: int) -> None:
    """Property 21 in 0.0001-share steps (fractional shares on): tranches sum to the whole,
    differ by at most one step, and each is a whole number of steps."""
    step = D("0.0001")
    total = units * step
    tranches = split_into_tranches(
        total, "d", NOW, GradualEntrySettings(tranche_count=count), share_step=step
    )
    sizes = [t.quantity for t in tranches]
    assert len(sizes) == min(count, units)
    assert sum(sizes) == total and min(sizes) >= step and max(sizes) - min(sizes) <= step
    assert all(size % step == 0 for size in sizes)


def test_threshold_is_min_of_thirty_dollars_and_five_percent() -> None:
    assert not should_use_gradual_entry(D("30"), D("10000"))
    assert should_use_gradual_entry(D("30.01"), D("10000"))
    assert not should_use_gradual_entry(D("10"), D("200"))  # 5% of $200 = $10
    assert should_use_gradual_entry(D("10.01"), D("200"))


def test_few_shares_give_fewer_tranches() -> None:
    tranches = split_into_tranches(2, "d", NOW)
    assert [t.quantity for t in tranches] == [1, 1]
    assert [t.quantity for t in split_into_tranches(10, "d", NOW)] == [4, 3, 3]
    with pytest.raises(ValueError):
        split_into_tranches(0, "d", NOW)
    with pytest.raises(ValueError):
        split_into_tranches(D("2.5"), "d", NOW)


def test_manager_submits_and_cancels_with_reason() -> None:
    plan = plan_entry("d-1", "XYZ", 9, D("50"), D("10000"), NOW)
    assert [t.index for t in plan.due(NOW)] == [1]
    plan = mark_submitted(plan, 1)
    assert plan.due(NOW) == ()
    assert [t.index for t in plan.due(NOW + timedelta(minutes=30))] == [2]
    with pytest.raises(ValueError, match="not pending"):
        mark_submitted(plan, 1)
    plan = cancel_remaining(plan, "confidence fell below the tier minimum")
    assert plan.is_complete and plan.cancel_reason == "confidence fell below the tier minimum"
    assert [t.status for t in plan.tranches] == [
        TrancheStatus.SUBMITTED,
        TrancheStatus.CANCELLED,
        TrancheStatus.CANCELLED,
    ]
    with pytest.raises(ValueError, match="naive"):
        plan.due(datetime(2024, 6, 3, 14, 0))
