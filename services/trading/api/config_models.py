"""The engine configuration as the API reads and changes it (seed tasks 20.1 and 20.2).

`ConfigUpdate` is a partial document: the fields sent are changed, the rest kept. Every field
is checked against its allowed range before anything is written: the ranges are the
`trading_engine_config` CHECK constraints (018 migration), narrowed where docs/contracts.md section 5 or the
environment settings (`TradingConfig`) set an upper bound; counts and switches take JSON
integers and booleans only, decimals are finite and storable (`inputs.py`). Unknown fields are
refused. The two rules that tie fields together (correlation reduce <= reject, earnings reject
<= reduce) are the database's, checked on the merged row inside the update's transaction.

The notification settings live in the same row but have their own endpoint and model
(`/api/trading/notifications/config`), with their own cross-field rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.shared.schemas import RiskTierName, RiskTierRule
from services.trading.api.inputs import InputDecimal, JsonBool, JsonInt
from services.trading.api.models import ApiModel, Dec
from services.trading.core.engine_settings import TIER_FIELDS, tier_configs

MAX_MONEY = Decimal("1e12")


def _fraction(*, open_low: bool = True, description: str | None = None) -> Any:
    low = {"gt": 0} if open_low else {"ge": 0}
    return Field(None, le=1, allow_inf_nan=False, max_digits=20, description=description, **low)


def _money(*, positive: bool = False, description: str | None = None) -> Any:
    low = {"gt": 0} if positive else {"ge": 0}
    return Field(None, le=MAX_MONEY, allow_inf_nan=False, max_digits=24, description=description, **low)


def _seconds(description: str | None = None) -> Any:
    return Field(None, gt=0, le=3600, allow_inf_nan=False, max_digits=20, description=description)


class TierOverride(BaseModel):
    """Per-tier changes to RISK_TIER_DEFAULTS (docs/contracts.md section 5); absent fields keep the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_confidence: InputDecimal = _fraction()
    base_allocation_pct: InputDecimal = _fraction()
    max_position_pct: InputDecimal = _fraction()
    stop_loss_atr_multiplier: InputDecimal = Field(None, gt=0, le=10, allow_inf_nan=False, max_digits=20)
    reward_risk_ratio: InputDecimal = Field(None, gt=0, le=20, allow_inf_nan=False, max_digits=20)
    max_sector_pct: InputDecimal = _fraction()
    max_portfolio_heat: InputDecimal = _fraction()


class ConfigUpdate(BaseModel):
    """Fields to change. `null` is not a value: leave a field out to keep it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: JsonBool = Field(None, description="Trading on (the owner's switch; off by default).")
    paused: JsonBool = Field(None, description="Same as POST /pause and /resume.")
    risk_tier: RiskTierName = None  # type: ignore[assignment]
    risk_tier_overrides: dict[RiskTierName, TierOverride] = Field(
        None, description="Replaces all overrides: {tier: {field: value}}; {} restores the defaults."
    )
    reserve_siphon_pct: InputDecimal = _fraction(
        open_low=False, description="Share of each realised profit moved to the Reserve Pool."
    )
    polling_interval_seconds: InputDecimal = _seconds()
    stop_loss_check_interval_seconds: InputDecimal = _seconds()
    fast_stop_loss_interval_seconds: InputDecimal = _seconds("Stop checks during a high-severity event.")
    gradual_entry_tranches: JsonInt = Field(None, ge=1, le=20)
    gradual_entry_interval_minutes: JsonInt = Field(None, ge=1, le=390)
    gradual_entry_threshold_dollars: InputDecimal = _money()
    absolute_position_cap: InputDecimal = _money(positive=True)
    active_pool_minimum: InputDecimal = _money()
    max_open_positions: JsonInt = Field(None, ge=1, le=500)
    fractional_shares: JsonBool = None  # type: ignore[assignment]
    daily_loss_limit_pct: InputDecimal = _fraction()
    single_position_loss_pct: InputDecimal = _fraction()
    ticker_cooldown_hours: InputDecimal = Field(None, ge=0, le=720, allow_inf_nan=False, max_digits=20)
    volatility_stop_count: JsonInt = Field(None, ge=1, le=100)
    volatility_window_minutes: JsonInt = Field(None, ge=1, le=390)
    volatility_halt_minutes: JsonInt = Field(None, ge=1, le=10080)
    emergency_drawdown_threshold_pct: InputDecimal = _fraction()
    reserve_high_water_pct: InputDecimal = _fraction()
    correlation_reduce_threshold: InputDecimal = _fraction(open_low=False)
    correlation_reject_threshold: InputDecimal = _fraction(open_low=False)
    earnings_reduce_sessions: JsonInt = Field(None, ge=0, le=30)
    earnings_reject_sessions: JsonInt = Field(None, ge=0, le=30)
    micro_trading_enabled: JsonBool = None  # type: ignore[assignment]
    micro_trading_interval_seconds: InputDecimal = _seconds(
        "While a micro-trade is held, the protective pass (its stops and maximum hold) runs at least this often."
    )
    micro_trading_allocation_cap_pct: InputDecimal = _fraction()
    micro_trading_max_daily: JsonInt = Field(None, ge=0, le=1000)
    micro_trading_max_hold_minutes: JsonInt = Field(None, ge=1, le=390)
    risk_tier_rule: RiskTierRule = Field(
        None,
        description="The tier autopilot: 'guarded' (evidence, a chance to trade, a way back up) or "
        "'plan' (the plan's rule literally; the three numbers below are then ignored).",
    )
    risk_tier_min_trades: JsonInt = Field(
        None, ge=1, le=1000, description="Closed standard trades the win-rate rules need to act."
    )
    risk_tier_min_sessions: JsonInt = Field(
        None, ge=0, le=1000, description="Sessions a tier trades before it can be lowered again."
    )
    risk_tier_recovery_sessions: JsonInt = Field(
        None,
        ge=0,
        le=1000,
        description="Sessions without a downgrade trigger after which a tier below the owner's "
        "steps back up one level; 0: never.",
    )

    def changes(self) -> dict[str, Any]:
        """Column -> value for `EngineStore.update_config`, only the fields that were sent."""
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("risk_tier", "risk_tier_rule"):
            if name in changes:
                changes[name] = changes[name].value
        if "risk_tier_overrides" in changes:
            changes["risk_tier_overrides"] = {
                tier.value: {k: str(v) for k, v in override.model_dump(exclude_unset=True).items()}
                for tier, override in changes["risk_tier_overrides"].items()
            }
        return changes


CONFIG_FIELDS = tuple(ConfigUpdate.model_fields)

Tier = Annotated[dict[str, Dec], Field(description="The tier's parameters after overrides.")]


class ConfigView(ApiModel):
    enabled: bool
    paused: bool
    risk_tier: RiskTierName
    risk_tier_overrides: dict[str, dict[str, Dec]]
    tiers: dict[str, Tier] = Field(description="Every tier's effective parameters (defaults + overrides).")
    reserve_siphon_pct: Dec
    polling_interval_seconds: Dec
    stop_loss_check_interval_seconds: Dec
    fast_stop_loss_interval_seconds: Dec
    gradual_entry_tranches: int
    gradual_entry_interval_minutes: int
    gradual_entry_threshold_dollars: Dec
    absolute_position_cap: Dec
    active_pool_minimum: Dec
    max_open_positions: int
    fractional_shares: bool
    daily_loss_limit_pct: Dec
    single_position_loss_pct: Dec
    ticker_cooldown_hours: Dec
    volatility_stop_count: int
    volatility_window_minutes: int
    volatility_halt_minutes: int
    emergency_drawdown_threshold_pct: Dec
    reserve_high_water_pct: Dec
    correlation_reduce_threshold: Dec
    correlation_reject_threshold: Dec
    earnings_reduce_sessions: int
    earnings_reject_sessions: int
    micro_trading_enabled: bool
    micro_trading_interval_seconds: Dec
    micro_trading_allocation_cap_pct: Dec
    micro_trading_max_daily: int
    micro_trading_max_hold_minutes: int
    risk_tier_rule: RiskTierRule
    risk_tier_min_trades: int
    risk_tier_min_sessions: int
    risk_tier_recovery_sessions: int
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ConfigView:
        overrides = row["risk_tier_overrides"] or {}
        tiers = {
            name.value: {f: getattr(tier, f) for f in TIER_FIELDS}
            for name, tier in tier_configs(overrides).items()
        }
        values = {name: row[name] for name in CONFIG_FIELDS}
        values["risk_tier_overrides"] = {
            tier: {k: Decimal(str(v)) for k, v in fields.items()} for tier, fields in overrides.items()
        }
        return cls(**values, tiers=tiers, updated_at=row["updated_at"])


class ConfigChange(ApiModel):
    changed: list[str] = Field(description="Fields whose value changed (none: nothing was written).")
    config: ConfigView


class EngineSwitch(ApiModel):
    enabled: bool
    paused: bool
    changed: bool = Field(description="False when the engine was already in that state (nothing written).")
