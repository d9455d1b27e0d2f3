"""The engine's running configuration: one frozen value built from the `trading_engine_config`
row, handing each rule module its own settings object.

The value is replaced whole when the owner changes the configuration (STYLE principle 6), so
a decision never sees half of an update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from services.shared.schemas import RiskTierName
from services.trading.core.circuit_breaker import BreakerSettings
from services.trading.core.gradual_entry import GradualEntrySettings
from services.trading.core.micro_trading import MicroTradingSettings
from services.trading.core.models import RISK_TIER_DEFAULTS, RiskTierConfig
from services.trading.core.position_sizer import SizingSettings
from services.trading.core.rebalancer import RebalanceSettings
from services.trading.core.reserve_pool import ReserveSettings
from services.trading.core.risk_tier_controller import RiskTierSettings, TierRule
from services.trading.core.stop_loss_manager import StopSettings

TIER_FIELDS = (
    "min_confidence",
    "base_allocation_pct",
    "max_position_pct",
    "stop_loss_atr_multiplier",
    "reward_risk_ratio",
    "max_sector_pct",
    "max_portfolio_heat",
)


def tier_configs(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[RiskTierName, RiskTierConfig]:
    """RISK_TIER_DEFAULTS with the owner's per-tier overrides (stored as JSON) applied."""
    configs = {}
    for name, default in RISK_TIER_DEFAULTS.items():
        changes = (overrides or {}).get(name.value, {})
        values = {f: Decimal(str(changes[f])) if f in changes else getattr(default, f) for f in TIER_FIELDS}
        configs[name] = RiskTierConfig(name=name, **values)
    return configs


@dataclass(frozen=True, slots=True)
class EngineSettings:
    enabled: bool = False
    paused: bool = False
    risk_tier: RiskTierName = RiskTierName.MODERATE
    tiers: Mapping[RiskTierName, RiskTierConfig] = field(default_factory=lambda: dict(RISK_TIER_DEFAULTS))
    polling_interval: timedelta = timedelta(seconds=30)
    stop_check_interval: timedelta = timedelta(seconds=300)
    fast_stop_check_interval: timedelta = timedelta(seconds=60)
    max_open_positions: int = 10
    large_trade_pnl_threshold: Decimal = Decimal(100)
    sizing: SizingSettings = SizingSettings()
    stops: StopSettings = StopSettings()
    breakers: BreakerSettings = BreakerSettings()
    reserve: ReserveSettings = ReserveSettings()
    gradual: GradualEntrySettings = GradualEntrySettings()
    micro: MicroTradingSettings = MicroTradingSettings()
    micro_polling_interval: timedelta = timedelta(seconds=60)
    tier_rules: RiskTierSettings = RiskTierSettings()

    @property
    def tier(self) -> RiskTierConfig:
        return self.tiers[self.risk_tier]

    @property
    def rebalance(self) -> RebalanceSettings:
        return RebalanceSettings(
            max_open_positions=self.max_open_positions, fractional_shares=self.sizing.fractional_shares
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EngineSettings:
        """Build the settings from a `trading_engine_config` row (or any mapping of its columns)."""
        seconds = lambda column: timedelta(seconds=float(row[column]))  # noqa: E731
        minutes = lambda column: timedelta(minutes=float(row[column]))  # noqa: E731
        return cls(
            enabled=row["enabled"],
            paused=row["paused"],
            risk_tier=RiskTierName(row["risk_tier"]),
            tiers=tier_configs(row["risk_tier_overrides"]),
            polling_interval=seconds("polling_interval_seconds"),
            stop_check_interval=seconds("stop_loss_check_interval_seconds"),
            fast_stop_check_interval=seconds("fast_stop_loss_interval_seconds"),
            max_open_positions=row["max_open_positions"],
            large_trade_pnl_threshold=row["large_trade_pnl_threshold"],
            sizing=SizingSettings(
                absolute_position_cap=row["absolute_position_cap"],
                active_pool_minimum=row["active_pool_minimum"],
                fractional_shares=row["fractional_shares"],
                correlation_reduce_above=row["correlation_reduce_threshold"],
                correlation_reject_above=row["correlation_reject_threshold"],
                earnings_reduce_within_sessions=row["earnings_reduce_sessions"],
                earnings_reject_within_sessions=row["earnings_reject_sessions"],
            ),
            breakers=BreakerSettings(
                daily_loss_pct=row["daily_loss_limit_pct"],
                single_position_loss_pct=row["single_position_loss_pct"],
                ticker_cooldown=timedelta(hours=float(row["ticker_cooldown_hours"])),
                volatility_stop_outs=row["volatility_stop_count"],
                volatility_window=minutes("volatility_window_minutes"),
                volatility_halt=minutes("volatility_halt_minutes"),
            ),
            reserve=ReserveSettings(
                reserve_siphon_pct=row["reserve_siphon_pct"],
                emergency_drawdown_threshold_pct=row["emergency_drawdown_threshold_pct"],
                reserve_high_water_pct=row["reserve_high_water_pct"],
            ),
            gradual=GradualEntrySettings(
                threshold_dollars=row["gradual_entry_threshold_dollars"],
                tranche_count=row["gradual_entry_tranches"],
                tranche_spacing=minutes("gradual_entry_interval_minutes"),
            ),
            micro=MicroTradingSettings(
                enabled=row["micro_trading_enabled"],
                allocation_cap_pct=row["micro_trading_allocation_cap_pct"],
                max_daily=row["micro_trading_max_daily"],
                max_hold=minutes("micro_trading_max_hold_minutes"),
                max_open_positions=row["max_open_positions"],
            ),
            micro_polling_interval=seconds("micro_trading_interval_seconds"),
            tier_rules=RiskTierSettings(
                rule=TierRule(row["risk_tier_rule"]),
                min_trades=row["risk_tier_min_trades"],
                min_sessions=row["risk_tier_min_sessions"],
                recovery_sessions=row["risk_tier_recovery_sessions"],
            ),
        )
