"""The search space: its forms parse to the same space, a bad parameter is refused with its name
and the reason, the bounds agree with the API's own limits on the same settings, and a trial's
parameters land in the settings the backtest replays with."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.shared.schemas import RiskTierName
from services.trading.api.config_models import ConfigUpdate, TierOverride
from services.trading.backtest import BacktestConfig
from services.trading.optimize.config import OptimizationConfig, OptimizationConfigError
from services.trading.optimize.search_space import (
    ENGINE_TUNABLES,
    TIER_TUNABLES,
    Choice,
    Range,
    SearchSpace,
    SearchSpaceError,
    apply_parameters,
    signal_windows,
)


def _config(**changes) -> BacktestConfig:
    values = {
        "start_date": date(2005, 1, 3),
        "end_date": date(2005, 12, 30),
        "initial_capital": Decimal(10_000),
        "risk_tier": RiskTierName.MODERATE,
        "signals": "momentum",
    }
    return BacktestConfig(**{**values, **changes})


def test_the_three_forms_give_the_same_space(tmp_path) -> None:
    raw = {
        "reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5},
        "signal_fast_window": {"low": 5, "high": 20, "log": True},
        "min_confidence": [0.55, 0.65],
    }
    path = tmp_path / "space.json"
    path.write_text(json.dumps(raw))
    from_items = SearchSpace.from_items(
        ["reward_risk_ratio=1:3:0.5", "signal_fast_window=5:20:log", "min_confidence=0.55,0.65"]
    )
    assert SearchSpace.parse(raw) == SearchSpace.from_file(path) == from_items
    assert from_items.parameters == (
        Range("reward_risk_ratio", 1.0, 3.0, 0.5),
        Range("signal_fast_window", 5, 20, None, True),
        Choice("min_confidence", (0.55, 0.65)),
    )
    assert SearchSpace.parse(from_items.to_json()) == from_items
    assert from_items.grid()["reward_risk_ratio"] == [1.0, 1.5, 2.0, 2.5, 3.0]


@pytest.mark.parametrize(
    ("items", "parameter", "reason"),
    [
        (["leverage=1:3"], "leverage", "unknown parameter"),
        (["reward_risk_ratio=0:3"], "reward_risk_ratio", "0 is outside the allowed (0, 20]"),
        (["stop_loss_atr_multiplier=1:11"], "stop_loss_atr_multiplier", "11 is outside the allowed (0, 10]"),
        (["min_confidence=0.5,1.2"], "min_confidence", "1.2 is outside the allowed (0, 1]"),
        (["max_open_positions=1.5:4"], "max_open_positions", "1.5 is not a whole number"),
        (["reward_risk_ratio=3:1"], "reward_risk_ratio", "low 3 must be below high 1"),
        (["reward_risk_ratio=1:2.9:0.2"], "reward_risk_ratio", "not low 1 plus a whole number of steps"),
        (["reward_risk_ratio=1:3:-1"], "reward_risk_ratio", "step -1 must be positive"),
        (["reserve_siphon_pct=0:0.5:log"], "reserve_siphon_pct", "a log scale needs low above 0"),
        (["reward_risk_ratio=1:3", "reward_risk_ratio=2:4"], "reward_risk_ratio", "given more than once"),
        (["reward_risk_ratio=one:3"], "reward_risk_ratio", "'one' is not a number"),
        (["reward_risk_ratio"], "reward_risk_ratio", "is not name=low:high"),
        (["risky.min_confidence=0.5:0.6"], "risky.min_confidence", "unknown risk tier 'risky'"),
        (["signal_fast_window=40:60", "signal_slow_window=20:40"], "signal_fast_window", "never shorter"),
        (["signal_slow_window=2:200"], "signal_slow_window", "200 is outside the allowed [2, 100]"),
    ],
)
def test_a_bad_parameter_is_refused_with_its_name_and_reason(items, parameter, reason) -> None:
    with pytest.raises(SearchSpaceError) as refused:
        SearchSpace.from_items(items)
    assert refused.value.parameter == parameter
    assert reason in str(refused.value) and str(refused.value).startswith(f"parameter {parameter}:")


def test_the_space_is_checked_against_the_backtest_it_varies() -> None:
    windows = SearchSpace.from_items(["signal_fast_window=5:20"])
    with pytest.raises(OptimizationConfigError) as refused:
        OptimizationConfig(backtest=_config(signals="database"), space=windows)
    assert refused.value.field == "space.signal_fast_window" and "momentum" in str(refused.value)
    twice = SearchSpace.from_items(["min_confidence=0.5:0.7", "moderate.min_confidence=0.5:0.7"])
    with pytest.raises(OptimizationConfigError, match="the same setting as min_confidence"):
        OptimizationConfig(backtest=_config(), space=twice)
    with pytest.raises(OptimizationConfigError, match="a grid search needs a step"):
        OptimizationConfig(
            backtest=_config(), space=SearchSpace.from_items(["reward_risk_ratio=1:3"]), sampler="grid"
        )


# -- the bounds are the API's: an independent statement of what the engine accepts -----------------


def _api_accepts(name: str, value: float) -> bool:
    try:
        if name in TIER_TUNABLES:
            TierOverride(**{name: Decimal(repr(value)) if isinstance(value, float) else value})
        else:
            column = {"daily_loss_limit_pct": "daily_loss_limit_pct"}.get(name, name)
            ConfigUpdate(**{column: Decimal(repr(value)) if isinstance(value, float) else value})
    except ValidationError:
        return False
    return True


API_NAMES = [
    *TIER_TUNABLES,
    *(n for n in ENGINE_TUNABLES if n in ConfigUpdate.model_fields),
]


def test_every_setting_the_api_limits_is_checked_here() -> None:
    assert set(API_NAMES) >= {
        "max_open_positions",
        "absolute_position_cap",
        "reserve_siphon_pct",
        "daily_loss_limit_pct",
        "single_position_loss_pct",
        "gradual_entry_tranches",
    }


@given(
    name=st.sampled_from(API_NAMES),
    value=st.one_of(
        # Six places at most: the API also caps a decimal's digits, a different question.
        st.decimals(-2, 25, places=6).map(float),
        st.integers(-5, 600).map(float),
        st.sampled_from([0.0, 1.0, 10.0, 20.0, 1e12, 1.0000001]),
    ),
)
def test_a_value_is_allowed_exactly_when_the_api_would_accept_it(name: str, value: float) -> None:
    setting = ENGINE_TUNABLES.get(name) or TIER_TUNABLES[name]
    if setting.kind is int and value != int(value):
        return  # the API takes JSON integers only: not the same question
    number = int(value) if setting.kind is int else value
    assert (setting.refusal(number) is None) == _api_accepts(name, number)


# -- a trial's parameters in the settings -----------------------------------------------------------


@given(
    rr=st.floats(0.1, 20, allow_nan=False),
    atr=st.floats(0.1, 10, allow_nan=False),
    positions=st.integers(1, 500),
    siphon=st.floats(0, 1, allow_nan=False),
    fast=st.integers(1, 40),
)
def test_a_trials_parameters_land_where_the_engine_reads_them(rr, atr, positions, siphon, fast) -> None:
    base = _config(risk_tier="aggressive")
    params = {
        "reward_risk_ratio": rr,
        "stop_loss_atr_multiplier": atr,
        "max_open_positions": positions,
        "reserve_siphon_pct": siphon,
        "conservative.min_confidence": 0.9,
        "signal_fast_window": fast,
    }
    config = apply_parameters(base, params)
    s = config.settings
    assert s.tier.reward_risk_ratio == Decimal(repr(rr)) and s.tier.stop_loss_atr_multiplier == Decimal(
        repr(atr)
    )
    assert s.max_open_positions == positions == s.micro.max_open_positions
    assert s.reserve.reserve_siphon_pct == Decimal(repr(siphon))
    assert s.tiers[RiskTierName.CONSERVATIVE].min_confidence == Decimal("0.9")
    # Nothing else moved: the other tiers and the rest of the run.
    assert s.tiers[RiskTierName.MODERATE] == base.settings.tiers[RiskTierName.MODERATE]
    assert (config.start_date, config.tickers, config.fill) == (base.start_date, base.tickers, base.fill)
    assert signal_windows(params) == (fast, 30)


def test_a_value_outside_its_bounds_is_refused_when_applied() -> None:
    with pytest.raises(SearchSpaceError, match="parameter reward_risk_ratio: 25 is outside"):
        apply_parameters(_config(), {"reward_risk_ratio": 25.0})


@given(low=st.integers(0, 20), steps=st.integers(1, 30), step=st.sampled_from(["0.05", "0.1", "0.25", "0.5"]))
def test_a_stepped_range_samples_only_its_steps(low, steps, step) -> None:
    lo = Decimal(low) * Decimal("0.05")
    hi = lo + steps * Decimal(step)
    if hi > 10 or lo <= 0:
        return
    space = SearchSpace.from_items([f"stop_loss_atr_multiplier={lo}:{hi}:{step}"])
    grid = space.grid()["stop_loss_atr_multiplier"]
    assert len(grid) == steps + 1 and grid[0] == float(lo) and grid[-1] == float(hi)
    # What Optuna hands back carries float noise; the value applied is on the step.
    noisy = float(lo) + 3 * float(step) if steps >= 3 else float(lo)
    applied = space.normalise({"stop_loss_atr_multiplier": noisy})["stop_loss_atr_multiplier"]
    assert Decimal(repr(applied)) % Decimal(step) == lo % Decimal(step)
