"""Risk tier defaults and their persistence (seed task 3.2; docs/contracts.md section 5)."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import RiskTierName
from services.trading.core.engine_settings import TIER_FIELDS, EngineSettings, tier_configs
from services.trading.core.models import RISK_TIER_DEFAULTS

# docs/contracts.md section 5's table, column by column, as written there.
SPEC_TABLE = {
    "min_confidence": ("0.75", "0.65", "0.55"),
    "base_allocation_pct": ("0.03", "0.05", "0.08"),
    "max_position_pct": ("0.05", "0.10", "0.15"),
    "stop_loss_atr_multiplier": ("1.5", "2.0", "2.5"),
    "reward_risk_ratio": ("2.0", "2.0", "1.5"),
    "max_sector_pct": ("0.25", "0.35", "0.50"),
    "max_portfolio_heat": ("0.06", "0.10", "0.15"),
}
TIERS = (RiskTierName.CONSERVATIVE, RiskTierName.MODERATE, RiskTierName.AGGRESSIVE)


def test_defaults_are_the_spec_table() -> None:
    for field, values in SPEC_TABLE.items():
        assert [getattr(RISK_TIER_DEFAULTS[t], field) for t in TIERS] == [Decimal(v) for v in values], field
    assert all(RISK_TIER_DEFAULTS[t].name is t for t in TIERS)


def test_defaults_are_valid_and_ordered_by_risk() -> None:
    """Property 29 (partial, task 3.2): every default is in its valid range, and risk grows
    from conservative to aggressive: a lower confidence bar, larger positions, wider stops,
    more sector concentration and more heat allowed."""
    c, m, a = (RISK_TIER_DEFAULTS[t] for t in TIERS)
    for tier in (c, m, a):
        assert 0 < tier.min_confidence <= 1
        assert 0 < tier.base_allocation_pct <= tier.max_position_pct <= 1
        assert tier.stop_loss_atr_multiplier > 0 and tier.reward_risk_ratio > 0
        assert 0 < tier.max_sector_pct <= 1 and 0 < tier.max_portfolio_heat <= 1
    assert c.min_confidence > m.min_confidence > a.min_confidence
    for field in (
        "base_allocation_pct",
        "max_position_pct",
        "stop_loss_atr_multiplier",
        "max_sector_pct",
        "max_portfolio_heat",
    ):
        assert getattr(c, field) < getattr(m, field) < getattr(a, field), field


fractions = st.decimals(Decimal("0.01"), Decimal("1"), places=4)
overrides = st.dictionaries(
    st.sampled_from([t.value for t in TIERS]),
    st.dictionaries(st.sampled_from(TIER_FIELDS), fractions, max_size=len(TIER_FIELDS)),
    max_size=3,
)


@settings(max_examples=100, deadline=None)
@given(overrides)
def test_tier_overrides_round_trip_through_json(changes) -> None:
    """Property 29 (partial): per-tier parameters saved as the config row's JSON come back
    exactly; parameters not overridden keep the contract's defaults."""
    stored = json.loads(json.dumps({t: {f: str(v) for f, v in p.items()} for t, p in changes.items()}))
    configs = tier_configs(stored)
    for tier in TIERS:
        for field in TIER_FIELDS:
            expected = changes.get(tier.value, {}).get(field, getattr(RISK_TIER_DEFAULTS[tier], field))
            assert getattr(configs[tier], field) == expected


@pytest.mark.integration
async def test_tier_overrides_round_trip_through_the_database(db: asyncpg.Connection) -> None:
    saved = {"aggressive": {"max_position_pct": "0.2", "min_confidence": "0.6"}}
    await db.execute(
        "UPDATE trading_engine_config SET risk_tier_overrides = $1, risk_tier = 'aggressive'", saved
    )
    engine_settings = EngineSettings.from_row(await db.fetchrow("SELECT * FROM trading_engine_config"))
    assert engine_settings.tier.max_position_pct == Decimal("0.2")
    assert engine_settings.tier.min_confidence == Decimal("0.6")
    assert engine_settings.tier.max_sector_pct == RISK_TIER_DEFAULTS[RiskTierName.AGGRESSIVE].max_sector_pct
    assert engine_settings.tiers[RiskTierName.MODERATE] == RISK_TIER_DEFAULTS[RiskTierName.MODERATE]
