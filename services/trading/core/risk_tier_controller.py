"""Moving between risk tiers on evidence (seed task 9.1, docs/contracts.md sections 5 and 6.9).

The plan's rule (`evaluate_risk_tier`, kept literally): at market close, down one level when
the trailing-30-day win rate is below 40% or drawdown above 15%; up one level when the win
rate is above 55%, the Reserve Pool holds more than 20% of total value and drawdown is below
5%. Never below conservative nor above aggressive.

Taken literally it is a one-way ratchet (issue 15): one losing trade is a 0% win rate, the
lower tier's stricter minimum confidence can stop all trading, no trades means no win rate to
climb back on, and a 20% reserve share of total value needs the account to double. `judge`
is the rule the engine runs; with `rule = plan` it is the plan's rule exactly, and with the
default `rule = guarded` three guards make it a controller (docs/decisions.md, *Risk-tier
autopilot*):

1. Evidence: each tier is judged on its own record, the standard trades closed since it took
   over (within the trailing 30 days) and the drawdown from the highest close since then; the
   win-rate rules act only on at least `min_trades` such trades.
2. A chance to trade: no downgrade within `min_sessions` closes of the last change.
3. A way back up: after `recovery_sessions` consecutive closes without a downgrade trigger, a
   tier below the owner's (the tier the owner last set) steps back up one level. Above the
   owner's tier only the evidence rule climbs.

Every close yields a verdict (`RiskTierChange`, changed or held) with the figures it used and
the controller's memory after it; the engine records each in `risk_tier_history`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.shared.schemas import RISK_TIER_ORDER, RiskTierName
from services.shared.schemas import RiskTierRule as TierRule
from services.trading.core.models import ClosedTrade, PerformanceMetrics
from services.trading.core.trading_window import require_aware

WIN_RATE_WINDOW = timedelta(days=30)  # the plan's trailing window (docs/contracts.md section 6.9)


@dataclass(frozen=True, slots=True)
class RiskTierSettings:
    downgrade_win_rate_below: float = 0.40
    downgrade_drawdown_above: float = 0.15
    upgrade_win_rate_above: float = 0.55
    upgrade_reserve_above: float = 0.20
    upgrade_drawdown_below: float = 0.05
    rule: TierRule = TierRule.GUARDED
    # Defaults justified in docs/decisions.md, *Risk-tier autopilot*.
    min_trades: int = 10
    min_sessions: int = 5
    recovery_sessions: int = 20


@dataclass(frozen=True, slots=True)
class TierMemory:
    """What the controller carries from one close to the next (stored with each verdict).

    `since`: when the current tier took over (None: no change on record); `sessions_at_tier`:
    closes judged since; `quiet_sessions`: consecutive closes without a downgrade trigger;
    `peak_since`: the highest close value since `since`; `ceiling`: the owner's tier, the
    highest recovery climbs back to (None: the current tier)."""

    since: datetime | None = None
    sessions_at_tier: int = 0
    quiet_sessions: int = 0
    peak_since: Decimal | None = None
    ceiling: RiskTierName | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "sessions_at_tier": self.sessions_at_tier,
            "quiet_sessions": self.quiet_sessions,
            "peak_since": None if self.peak_since is None else str(self.peak_since),
            "ceiling": None if self.ceiling is None else self.ceiling.value,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TierMemory:
        return cls(
            since=None if raw.get("since") is None else datetime.fromisoformat(raw["since"]),
            sessions_at_tier=int(raw.get("sessions_at_tier", 0)),
            quiet_sessions=int(raw.get("quiet_sessions", 0)),
            peak_since=None if raw.get("peak_since") is None else Decimal(raw["peak_since"]),
            ceiling=None if raw.get("ceiling") is None else RiskTierName(raw["ceiling"]),
        )

    def after_change(self, now: datetime, value: Decimal, ceiling: RiskTierName | None) -> TierMemory:
        """A new tier takes over at this close: its record starts empty."""
        return TierMemory(now, 0, 0, value, ceiling)


@dataclass(frozen=True, slots=True)
class RiskTierChange:
    """One `risk_tier_history` row: a change, or a held verdict when `previous_tier` is
    `new_tier`. `memory` is the controller's memory after the verdict (None for the plan's
    bare rule and the owner's changes)."""

    previous_tier: RiskTierName
    new_tier: RiskTierName
    trigger_source: str
    reason: str
    changed_at: datetime
    trigger_metrics: Mapping[str, Any] = field(default_factory=dict)
    memory: TierMemory | None = None

    @property
    def changed(self) -> bool:
        return self.previous_tier is not self.new_tier

    @property
    def verdict(self) -> str:
        return "changed" if self.changed else "held"

    def history_metrics(self) -> dict[str, Any]:
        """`trigger_metrics` as stored: the figures, with the memory after the verdict."""
        stored = dict(self.trigger_metrics)
        if self.memory is not None:
            stored["memory"] = self.memory.to_json()
        return stored


def _step(tier: RiskTierName, by: int) -> RiskTierName | None:
    index = RISK_TIER_ORDER.index(tier) + by
    return RISK_TIER_ORDER[index] if 0 <= index < len(RISK_TIER_ORDER) else None


def evaluate_risk_tier(
    current: RiskTierName,
    *,
    win_rate: float | None,
    drawdown: float,
    reserve_pct: float,
    now: datetime,
    settings: RiskTierSettings | None = None,
    trigger_source: str = "market_close",
) -> RiskTierChange | None:
    """The plan's rule, literally: the tier change the metrics call for, or None.

    `win_rate` is over closed trades of the trailing 30 days; None when there were none, in
    which case only the drawdown rule can act (no trades is no evidence of losing).
    `drawdown` is the current drawdown from peak as a positive fraction; `reserve_pct` is
    Reserve Pool / total value.
    """
    s = settings or RiskTierSettings()
    require_aware(now, "now")
    metrics = {"win_rate": win_rate, "drawdown": drawdown, "reserve_pct": reserve_pct}
    reasons = _downgrade_reasons(win_rate, drawdown, s, "30-day win rate")
    if reasons:
        target, reason = _step(current, -1), "downgrade: " + " and ".join(reasons)
    elif _upgrade_called(win_rate, drawdown, reserve_pct, s):
        target = _step(current, +1)
        reason = "upgrade: " + _upgrade_figures(win_rate, drawdown, reserve_pct, s, "30-day win rate")
    else:
        return None
    if target is None:  # already at the bound the rule points past
        return None
    return RiskTierChange(current, target, trigger_source, reason, now, metrics)


def _downgrade_reasons(win_rate: float | None, drawdown: float, s: RiskTierSettings, label: str) -> list[str]:
    reasons = []
    if win_rate is not None and win_rate < s.downgrade_win_rate_below:
        reasons.append(f"{label} {win_rate:.2%} < {s.downgrade_win_rate_below:.0%}")
    if drawdown > s.downgrade_drawdown_above:
        reasons.append(f"drawdown {drawdown:.2%} > {s.downgrade_drawdown_above:.0%}")
    return reasons


def _upgrade_called(win_rate: float | None, drawdown: float, reserve_pct: float, s: RiskTierSettings) -> bool:
    return (
        win_rate is not None
        and win_rate > s.upgrade_win_rate_above
        and reserve_pct > s.upgrade_reserve_above
        and drawdown < s.upgrade_drawdown_below
    )


def _upgrade_figures(
    win_rate: float | None, drawdown: float, reserve_pct: float, s: RiskTierSettings, label: str
) -> str:
    return (
        f"{label} {win_rate:.2%} > {s.upgrade_win_rate_above:.0%}, reserve "
        f"{reserve_pct:.2%} > {s.upgrade_reserve_above:.0%}, drawdown {drawdown:.2%} < "
        f"{s.upgrade_drawdown_below:.0%}"
    )


@dataclass(frozen=True, slots=True)
class CloseEvidence:
    """What a close shows the controller: every closed trade it may judge (older ones are
    ignored), the total value, the drawdown from the all-time peak, the Reserve Pool."""

    trades: tuple[ClosedTrade, ...]
    total_value: Decimal
    drawdown: float
    reserve_balance: Decimal


def judged_trades(
    trades: Iterable[ClosedTrade],
    now: datetime,
    since: datetime | None,
    settings: RiskTierSettings,
) -> list[ClosedTrade]:
    """The standard trades the win-rate rules read (micro-trades follow their own rules).

    The plan: those closed in the trailing 30 days. Guarded: those closed since the current
    tier took over, in the trailing 30 days or, when those are fewer than `min_trades`, the
    last `min_trades` of them: an engine that trades a few times a month is judged on its
    recent trades rather than never."""
    standard = sorted((t for t in trades if not t.is_micro_trade), key=lambda t: t.exit_at)
    start = now - WIN_RATE_WINDOW
    if settings.rule is TierRule.PLAN:
        return [t for t in standard if t.exit_at >= start]
    if since is not None:
        standard = [t for t in standard if t.exit_at > since]
    recent = [t for t in standard if t.exit_at >= start]
    return recent if len(recent) >= settings.min_trades else standard[-settings.min_trades :]


def keep_for_judging(trades: deque[ClosedTrade], now: datetime, settings: RiskTierSettings) -> None:
    """Drop from the left (oldest first) the trades `judged_trades` can no longer read: older
    than 30 days and not among the last `min_trades` standard trades. For a caller that keeps
    the record in memory (the backtest)."""
    keep = 0 if settings.rule is TierRule.PLAN else settings.min_trades
    standard_left = sum(1 for t in trades if not t.is_micro_trade)
    while trades and now - trades[0].exit_at > WIN_RATE_WINDOW:
        if not trades[0].is_micro_trade:
            if standard_left <= keep:
                # The micro-trades behind it are not read either, but they wait to be dropped
                # with it: the record stays in order.
                return
            standard_left -= 1
        trades.popleft()


def judge(
    current: RiskTierName,
    evidence: CloseEvidence,
    memory: TierMemory,
    now: datetime,
    settings: RiskTierSettings | None = None,
) -> RiskTierChange:
    """The verdict of one close: a change one level up or down, or held; with the figures
    used, the reason in words and the memory after it (module doc)."""
    s = settings or RiskTierSettings()
    require_aware(now, "now")
    guarded = s.rule is TierRule.GUARDED
    ceiling = memory.ceiling or current
    peak = max(peak_since(memory, evidence.total_value, evidence.drawdown), evidence.total_value)
    trades = judged_trades(evidence.trades, now, memory.since, s)
    wins = sum(1 for t in trades if t.pnl > 0)
    min_trades = s.min_trades if guarded else 1
    win_rate = wins / len(trades) if trades and len(trades) >= min_trades else None
    drawdown = float(1 - evidence.total_value / peak) if guarded and peak > 0 else evidence.drawdown
    total = evidence.total_value
    reserve_pct = float(evidence.reserve_balance / total) if total > 0 else 0.0
    label = f"win rate of {_trades(len(trades))}" + (
        " since the tier took over" if guarded and memory.since else ""
    )
    if not guarded:
        label = "30-day " + label
    figures: dict[str, Any] = {
        "rule": s.rule.value,
        "win_rate": win_rate,
        "trades": len(trades),
        "wins": wins,
        "drawdown": drawdown,
        "reserve_pct": reserve_pct,
    }
    triggers = _downgrade_reasons(win_rate, drawdown, s, label)
    quiet = 0 if triggers else memory.quiet_sessions + 1
    sessions = memory.sessions_at_tier + 1

    def verdict(new: RiskTierName, reason: str) -> RiskTierChange:
        if new is current:
            after = TierMemory(memory.since, sessions, quiet, peak, ceiling)
        else:
            # The owner's tier stays the ceiling; the record of the new tier starts at this close.
            after = memory.after_change(now, total, ceiling)
        return RiskTierChange(current, new, "market_close", reason, now, figures, after)

    context = _context(
        trades, wins, min_trades, drawdown, reserve_pct, guarded and memory.since is not None, label
    )
    if triggers:
        down = _step(current, -1)
        # `sessions` counts this one: the tier traded it before this close judges it.
        if guarded and memory.since is not None and sessions < s.min_sessions:
            return verdict(
                current,
                f"held: downgrade called for ({' and '.join(triggers)}) but the tier has had only "
                f"{sessions} of {s.min_sessions} sessions to trade since it took over",
            )
        if down is None:
            return verdict(current, f"held: already the lowest tier ({' and '.join(triggers)})")
        return verdict(down, "downgrade: " + " and ".join(triggers))
    up = _step(current, +1)
    if up is not None and _upgrade_called(win_rate, drawdown, reserve_pct, s):
        return verdict(up, "upgrade: " + _upgrade_figures(win_rate, drawdown, reserve_pct, s, label))
    below_owner = RISK_TIER_ORDER.index(current) < RISK_TIER_ORDER.index(ceiling)
    if guarded and s.recovery_sessions > 0 and below_owner:
        if quiet >= s.recovery_sessions and up is not None:
            return verdict(
                up,
                f"recovery: {quiet} sessions without a downgrade trigger ({context}); back up "
                f"toward the owner's tier {ceiling.value}",
            )
        context += f"; {quiet} of {s.recovery_sessions} quiet sessions toward recovery to {ceiling.value}"
    return verdict(current, f"held: no rule calls for a change ({context})")


def peak_since(memory: TierMemory, total: Decimal, drawdown: float) -> Decimal:
    """The highest close since the tier took over; with none on record, the all-time peak the
    close's drawdown implies (the plan's figure is where the record starts)."""
    if memory.peak_since is not None:
        return memory.peak_since
    if 0 < drawdown < 1:
        return total / (1 - Decimal(str(drawdown)))
    return total


def _trades(count: int) -> str:
    return f"{count} trade{'s' if count != 1 else ''}"


def _context(
    trades: list[ClosedTrade],
    wins: int,
    min_trades: int,
    drawdown: float,
    reserve_pct: float,
    since_change: bool,
    label: str,
) -> str:
    if not trades:
        record = "no standard trade to judge" + (" since the tier took over" if since_change else "")
    elif len(trades) < min_trades:
        record = f"{label} {wins / len(trades):.2%}, not judged below {min_trades} trades"
    else:
        record = f"{label} {wins / len(trades):.2%}"
    where = "since the tier took over" if since_change else "from peak"
    return f"{record}; drawdown {drawdown:.2%} {where}; reserve {reserve_pct:.2%} of total value"


def evaluate_from_metrics(
    current: RiskTierName,
    metrics: PerformanceMetrics,
    *,
    trailing_win_rate: float | None,
    now: datetime,
    settings: RiskTierSettings | None = None,
) -> RiskTierChange | None:
    """`evaluate_risk_tier` fed from a metrics snapshot: current drawdown and Reserve Pool
    share of total value. The trailing-30-day win rate is passed separately because the
    snapshot's win rate covers all trades."""
    total = metrics.total_portfolio_value
    reserve_pct = float(metrics.reserve_pool / total) if total > 0 else 0.0
    return evaluate_risk_tier(
        current,
        win_rate=trailing_win_rate,
        drawdown=metrics.current_drawdown,
        reserve_pct=reserve_pct,
        now=now,
        settings=settings,
    )
