"""The guarded risk-tier rule (issue 15; docs/contracts.md section 6.9): the win-rate rules
need evidence, a tier has a chance to trade before it drops again, and there is a way back
up. Each property states the rule on its own, from the settings, not from the module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import RiskTierName, RiskTierRule
from services.trading.core.models import ClosedTrade
from services.trading.core.risk_tier_controller import (
    CloseEvidence,
    RiskTierSettings,
    TierMemory,
    judge,
    judged_trades,
    keep_for_judging,
)

D = Decimal
NOW = datetime(2024, 6, 3, 20, 0, tzinfo=UTC)
ORDER = [RiskTierName.CONSERVATIVE, RiskTierName.MODERATE, RiskTierName.AGGRESSIVE]
tiers = st.sampled_from(ORDER)


def trade(pnl: int, days_ago: float, *, micro: bool = False) -> ClosedTrade:
    exit_at = NOW - timedelta(days=days_ago)
    return ClosedTrade("XYZ", D(100), D(100 + pnl), D(1), exit_at - timedelta(hours=1), exit_at, 1, micro)


trades = st.lists(
    st.builds(
        trade,
        st.integers(-20, 20).filter(bool),
        st.integers(0, 90 * 24).map(lambda h: h / 24),
        micro=st.booleans(),
    ),
    max_size=30,
)
rules = st.builds(
    RiskTierSettings,
    min_trades=st.integers(1, 15),
    min_sessions=st.integers(0, 10),
    recovery_sessions=st.integers(0, 30),
)
memories = st.builds(
    TierMemory,
    since=st.none() | st.integers(1, 80).map(lambda d: NOW - timedelta(days=d)),
    sessions_at_tier=st.integers(0, 40),
    quiet_sessions=st.integers(0, 40),
    peak_since=st.none() | st.integers(5_000, 20_000).map(D),
    ceiling=st.none() | tiers,
)


def evidence(closed, value=10_000, drawdown=0.0, reserve=0) -> CloseEvidence:
    return CloseEvidence(tuple(closed), D(value), drawdown, D(reserve))


def record(closed, memory: TierMemory, s: RiskTierSettings) -> list[ClosedTrade]:
    """The trades a tier is judged on, stated on its own: standard trades closed after the tier
    took over; those of the last 30 days, or the last `min_trades` when those are fewer."""
    mine = sorted(
        (t for t in closed if not t.is_micro_trade and (memory.since is None or t.exit_at > memory.since)),
        key=lambda t: t.exit_at,
    )
    recent = [t for t in mine if t.exit_at >= NOW - timedelta(days=30)]
    return recent if len(recent) >= s.min_trades else mine[-s.min_trades :]


@settings(max_examples=400, deadline=None)
@given(tiers, trades, memories, rules, st.integers(5_000, 20_000), st.integers(0, 5_000))
def test_property_every_close_moves_at_most_one_step_and_explains_itself(
    tier, closed, memory, s, value, reserve
) -> None:
    verdict = judge(tier, evidence(closed, value, reserve=reserve), memory, NOW, s)
    assert verdict.previous_tier is tier
    assert abs(ORDER.index(verdict.new_tier) - ORDER.index(tier)) <= 1
    assert verdict.reason.startswith(("held", "downgrade", "upgrade", "recovery"))
    assert verdict.changed == verdict.reason.startswith(("downgrade", "upgrade", "recovery"))
    for figure in ("win_rate", "trades", "drawdown", "reserve_pct"):
        assert figure in verdict.trigger_metrics
    after = verdict.memory
    assert after is not None and after.ceiling is (memory.ceiling or tier)
    if verdict.changed:  # the new tier's record starts at this close
        assert (after.since, after.sessions_at_tier, after.quiet_sessions) == (NOW, 0, 0)
    else:
        assert after.since == memory.since and after.sessions_at_tier == memory.sessions_at_tier + 1


@settings(max_examples=400, deadline=None)
@given(tiers, trades, memories, rules)
def test_property_the_win_rate_acts_only_on_enough_trades(tier, closed, memory, s) -> None:
    """No drawdown (the value at its peak): only the win rate could call for a change, and it
    is judged only on at least `min_trades` trades of the tier's own record."""
    memory = TierMemory(memory.since, memory.sessions_at_tier, 0, None, memory.ceiling)  # no recovery due
    verdict = judge(tier, evidence(closed), memory, NOW, s)
    judged = record(closed, memory, s)
    if len(judged) < s.min_trades:
        assert verdict.trigger_metrics["win_rate"] is None
        assert not verdict.reason.startswith(("downgrade", "upgrade"))
    else:
        assert verdict.trigger_metrics["trades"] == len(judged)
        assert verdict.trigger_metrics["win_rate"] == sum(t.pnl > 0 for t in judged) / len(judged)
    assert [t.exit_at for t in judged_trades(closed, NOW, memory.since, s)] == [t.exit_at for t in judged]


@settings(max_examples=400, deadline=None)
@given(tiers, trades, memories, rules, st.integers(0, 400).map(lambda bp: bp / 1000))
def test_property_no_drop_before_the_tier_had_its_sessions(tier, closed, memory, s, drawdown) -> None:
    """Counting this close's session, a tier that traded fewer than `min_sessions` sessions
    since it took over is not lowered, whatever the record."""
    if s.min_sessions == 0:
        return  # no wait asked for
    if memory.since is None or memory.sessions_at_tier + 1 >= s.min_sessions:
        memory = TierMemory(NOW - timedelta(days=1), s.min_sessions - 1 - 1, 0, None, memory.ceiling)
    if memory.sessions_at_tier < 0:
        return  # min_sessions = 1: every close has had its session
    peak = D(10_000)
    value = peak * (1 - D(str(drawdown)))
    memory = TierMemory(memory.since, memory.sessions_at_tier, 0, peak, memory.ceiling)
    verdict = judge(tier, evidence(closed, value, drawdown), memory, NOW, s)
    assert ORDER.index(verdict.new_tier) >= ORDER.index(tier)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ORDER[:2]), rules.filter(lambda s: s.recovery_sessions > 0))
def test_property_a_quiet_tier_climbs_back_to_the_owners(tier, s) -> None:
    """Below the owner's tier, no trades and a flat account: one level up after exactly
    `recovery_sessions` closes, then again after as many more, never past the owner's tier."""
    owner = RiskTierName.AGGRESSIVE
    memory = TierMemory(NOW - timedelta(days=1), 0, 0, D(10_000), owner)
    moves, now = [], NOW
    for close in range(1, 3 * s.recovery_sessions + 1):
        now += timedelta(days=1)
        verdict = judge(tier, evidence([]), memory, now, s)
        if verdict.changed:
            moves.append((close, verdict.new_tier))
            tier = verdict.new_tier
        memory = verdict.memory
    expected = [ORDER[i] for i in range(ORDER.index(moves[0][1]) if moves else 0, 3)]
    assert [t for _, t in moves] == expected[: len(moves)] and moves[-1][1] is owner
    assert [c for c, _ in moves] == [s.recovery_sessions * (i + 1) for i in range(len(moves))]


def test_recovery_never_climbs_past_the_owners_tier_and_is_off_at_zero() -> None:
    s = RiskTierSettings(recovery_sessions=3)
    memory = TierMemory(NOW - timedelta(days=9), 9, 50, D(10_000), RiskTierName.MODERATE)
    assert not judge(RiskTierName.MODERATE, evidence([]), memory, NOW, s).changed
    up = judge(RiskTierName.CONSERVATIVE, evidence([]), memory, NOW, s)
    assert up.new_tier is RiskTierName.MODERATE and up.reason.startswith("recovery")
    off = RiskTierSettings(recovery_sessions=0)
    assert not judge(RiskTierName.CONSERVATIVE, evidence([]), memory, NOW, off).changed


def test_a_held_downgrade_says_why_with_its_figures() -> None:
    s = RiskTierSettings(min_trades=2, min_sessions=5)
    memory = TierMemory(NOW - timedelta(days=3), 2, 7, D(10_000), RiskTierName.MODERATE)
    losers = [trade(-5, 1), trade(-5, 2)]
    verdict = judge(RiskTierName.MODERATE, evidence(losers), memory, NOW, s)
    assert not verdict.changed and verdict.verdict == "held"
    assert "3 of 5 sessions" in verdict.reason and "0.00% < 40%" in verdict.reason
    assert verdict.memory.quiet_sessions == 0  # a held trigger is not quiet
    later = TierMemory(memory.since, 4, 0, D(10_000), RiskTierName.MODERATE)  # the fifth session
    assert judge(RiskTierName.MODERATE, evidence(losers), later, NOW, s).new_tier is RiskTierName.CONSERVATIVE


def test_the_drawdown_is_judged_from_the_peak_since_the_tier_took_over() -> None:
    # 30% below the all-time peak, but flat since the tier took over: no new damage to judge.
    memory = TierMemory(NOW - timedelta(days=30), 20, 0, D(7_000), RiskTierName.MODERATE)
    verdict = judge(RiskTierName.CONSERVATIVE, evidence([], 7_000, 0.30), memory, NOW, RiskTierSettings())
    assert verdict.trigger_metrics["drawdown"] == 0.0
    # With nothing on record, the all-time peak the close's drawdown implies is where it starts.
    first = judge(RiskTierName.MODERATE, evidence([], 8_400, 0.16), TierMemory(), NOW, RiskTierSettings())
    assert first.new_tier is RiskTierName.CONSERVATIVE
    assert first.trigger_metrics["drawdown"] == 0.16 or abs(first.trigger_metrics["drawdown"] - 0.16) < 1e-9


@settings(max_examples=300, deadline=None)
@given(tiers, trades, memories, st.integers(0, 400).map(lambda bp: bp / 1000), st.integers(0, 5_000))
def test_property_the_plan_rule_is_the_plans_literal_rule(tier, closed, memory, drawdown, reserve) -> None:
    """rule = plan: the contract's table, stated here on its own; memory plays no part."""
    s = RiskTierSettings(rule=RiskTierRule.PLAN)
    value = 10_000
    verdict = judge(tier, evidence(closed, value, drawdown, reserve), memory, NOW, s)
    recent = [t for t in closed if not t.is_micro_trade and t.exit_at >= NOW - timedelta(days=30)]
    rate = sum(t.pnl > 0 for t in recent) / len(recent) if recent else None
    i = ORDER.index(tier)
    if (rate is not None and rate < 0.40) or drawdown > 0.15:
        expected = ORDER[max(i - 1, 0)]
    elif rate is not None and rate > 0.55 and reserve / value > 0.20 and drawdown < 0.05:
        expected = ORDER[min(i + 1, 2)]
    else:
        expected = tier
    assert verdict.new_tier is expected


@settings(max_examples=300, deadline=None)
@given(trades, rules, st.integers(0, 40))
def test_property_the_backtests_trimmed_record_judges_as_the_whole_record(closed, s, days_later) -> None:
    """The backtest keeps only what the rule can still read: judging the trimmed record gives
    the same trades as judging every trade."""
    from collections import deque

    ordered = sorted(closed, key=lambda t: t.exit_at)
    now = NOW + timedelta(days=days_later)
    kept = deque(ordered)
    keep_for_judging(kept, now, s)
    for since in (None, NOW - timedelta(days=45)):
        assert judged_trades(kept, now, since, s) == judged_trades(ordered, now, since, s)
