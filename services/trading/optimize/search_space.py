"""What a parameter search may turn (issue 16): named engine and signal parameters, each a range
(int or float, with a step or on a log scale) or a list of choices, checked against the
setting's own allowed values before any trial runs.

The tunable parameters and their bounds (`TUNABLE`) are the engine configuration's: the
`trading_engine_config` CHECK constraints and the API's `ConfigUpdate` limits for the settings
the owner can change (a test holds the two together), and the rule's own domain for the two
that only the code sets (the trailing stop's activation, the momentum signal's windows).
`EngineSettings` itself checks nothing, so the space is where a value the engine would refuse
is caught: before the search, with the parameter and the reason named.

Parameter names:

- a risk tier's field (`min_confidence`, `stop_loss_atr_multiplier`, `reward_risk_ratio`,
  `base_allocation_pct`, `max_position_pct`, `max_sector_pct`, `max_portfolio_heat`) tunes
  the backtest's own tier; `aggressive.min_confidence` names another tier's (the tier
  autopilot may move the run to it);
- engine-wide: `max_open_positions`, `absolute_position_cap`, `reserve_siphon_pct`,
  `trailing_activation_fraction`, `daily_loss_limit_pct`, `single_position_loss_pct`,
  `gradual_entry_tranches`;
- the momentum signal's `signal_fast_window` and `signal_slow_window` (sessions).

Forms: a mapping (JSON file, API body) `{"reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5},
"signal_fast_window": {"low": 5, "high": 20, "log": true}, "min_confidence": [0.55, 0.65]}`, or
command-line items `reward_risk_ratio=1:3:0.5`, `signal_fast_window=5:20:log`,
`min_confidence=0.55,0.65`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from services.shared.schemas import RiskTierName
from services.trading.backtest.config import BacktestConfig, SignalSource
from services.trading.backtest.market import WARMUP_SESSIONS
from services.trading.core.engine_settings import TIER_FIELDS, EngineSettings
from services.trading.market.momentum_signal import FAST_WINDOW, SLOW_WINDOW

MAX_MONEY = 1e12
MAX_GRID = 100_000  # points of a grid search: beyond it the grid is a typo, not a plan
FAST, SLOW = "signal_fast_window", "signal_slow_window"


class SearchSpaceError(ValueError):
    """A parameter the search cannot use: `parameter` names it, the message says why."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"parameter {parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Tunable:
    """A setting a search may turn: its kind and the values the engine accepts,
    `low < value` when `low_open`, else `low <= value`, and `value <= high`."""

    kind: type  # int or float
    low: float
    high: float
    low_open: bool
    description: str

    def refusal(self, value: float) -> str | None:
        if self.kind is int and (isinstance(value, bool) or value != int(value)):
            return f"{value} is not a whole number"
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high or not math.isfinite(value):
            return f"{_number(value)} is outside the allowed {self.bounds}"
        return None

    @property
    def bounds(self) -> str:
        return f"{'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"


def _fraction(description: str, *, open_low: bool = True) -> Tunable:
    return Tunable(float, 0.0, 1.0, open_low, description)


# The tier fields' bounds are TierOverride's (api/config_models.py), the rest ConfigUpdate's.
TIER_TUNABLES: Mapping[str, Tunable] = {
    "min_confidence": _fraction("lowest recommendation confidence the tier acts on"),
    "base_allocation_pct": _fraction("share of the Active Pool a position starts from"),
    "max_position_pct": _fraction("largest position, as a share of the portfolio"),
    "stop_loss_atr_multiplier": Tunable(float, 0.0, 10.0, True, "stop distance in ATR(14)s"),
    "reward_risk_ratio": Tunable(float, 0.0, 20.0, True, "take-profit distance over stop distance"),
    "max_sector_pct": _fraction("largest share of the portfolio in one sector"),
    "max_portfolio_heat": _fraction("largest total risk to stops, as a share of the portfolio"),
}
ENGINE_TUNABLES: Mapping[str, Tunable] = {
    "max_open_positions": Tunable(int, 1, 500, False, "positions held at once"),
    "absolute_position_cap": Tunable(float, 0.0, MAX_MONEY, True, "largest position in dollars"),
    "reserve_siphon_pct": _fraction(
        "share of each realised profit siphoned to the Reserve Pool", open_low=False
    ),
    "trailing_activation_fraction": _fraction(
        "share of the way to take-profit after which the stop moves to breakeven"
    ),
    "daily_loss_limit_pct": _fraction("daily loss that trips the breaker"),
    "single_position_loss_pct": _fraction("loss of one position that trips its breaker"),
    "gradual_entry_tranches": Tunable(int, 1, 20, False, "tranches of a large entry"),
    # The slow window cannot reach past the warm-up history loaded before the start.
    FAST: Tunable(int, 1, WARMUP_SESSIONS - 1, False, "momentum signal's fast SMA, in sessions"),
    SLOW: Tunable(int, 2, WARMUP_SESSIONS, False, "momentum signal's slow SMA, in sessions"),
}


def tunable(name: str) -> Tunable:
    """The definition of parameter `name`, or `SearchSpaceError` naming the known ones."""
    tier, _, field = name.rpartition(".")
    if tier:
        if tier not in {t.value for t in RiskTierName}:
            raise SearchSpaceError(name, f"unknown risk tier {tier!r}")
        if field not in TIER_TUNABLES:
            raise SearchSpaceError(
                name, f"a tier has no tunable field {field!r} (fields: {', '.join(TIER_FIELDS)})"
            )
        return TIER_TUNABLES[field]
    found = TIER_TUNABLES.get(name) or ENGINE_TUNABLES.get(name)
    if found is None:
        known = ", ".join([*TIER_TUNABLES, *ENGINE_TUNABLES])
        raise SearchSpaceError(name, f"unknown parameter (tunable: {known}; tier.field for another tier)")
    return found


# -- the parameters of a space -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """Values from `low` to `high` inclusive, every `step` apart (None: continuous floats),
    or sampled on a log scale (`log`)."""

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def distribution(self, kind: type) -> BaseDistribution:
        if kind is int:
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return FloatDistribution(self.low, self.high, step=self.step, log=self.log)

    def grid(self, kind: type) -> list[float] | None:
        if kind is float and self.step is None:
            return None
        step = Decimal(str(self.step or 1))
        count = int((Decimal(str(self.high)) - Decimal(str(self.low))) / step) + 1
        values = [Decimal(str(self.low)) + i * step for i in range(count)]
        return [int(v) if kind is int else float(v) for v in values]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the listed values."""

    name: str
    choices: tuple[float, ...]

    def distribution(self, kind: type) -> BaseDistribution:
        return CategoricalDistribution(self.choices)

    def grid(self, kind: type) -> list[float]:
        return list(self.choices)

    def to_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


Parameter = Range | Choice


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """The parameters of one search, each checked against its setting's bounds."""

    parameters: tuple[Parameter, ...]

    def __post_init__(self) -> None:
        if not self.parameters:
            raise SearchSpaceError("space", "the search space has no parameters")
        names = [p.name for p in self.parameters]
        for name in names:
            if names.count(name) > 1:
                raise SearchSpaceError(name, "given more than once")
        _check_signal_windows(self)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna's distribution of each parameter."""
        return {p.name: p.distribution(tunable(p.name).kind) for p in self.parameters}

    def grid(self) -> dict[str, list[float]]:
        """Every value of each parameter, for a grid search; a float range needs a step."""
        grid = {}
        for p in self.parameters:
            values = p.grid(tunable(p.name).kind)
            if values is None:
                raise SearchSpaceError(p.name, "a grid search needs a step for a float range (low:high:step)")
            grid[p.name] = values
        size = math.prod(len(v) for v in grid.values())
        if size > MAX_GRID:
            raise SearchSpaceError("space", f"the grid has {size:,} points; at most {MAX_GRID:,}")
        return grid

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def normalise(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Sampled values as the engine takes them: whole numbers as ints, values of a stepped
        range exactly on its steps (Optuna's float steps leave 0.30000000000000004 behind)."""
        out: dict[str, Any] = {}
        for p in self.parameters:
            value = params[p.name]
            if tunable(p.name).kind is int:
                out[p.name] = int(value)
            elif isinstance(p, Range) and p.step is not None:
                # Snapped to the grid in decimal: low + k * step exactly as written.
                low, step = Decimal(str(p.low)), Decimal(str(p.step))
                steps = ((Decimal(repr(float(value))) - low) / step).to_integral_value()
                out[p.name] = float(low + steps * step)
            else:
                out[p.name] = float(value)
        return out

    def to_json(self) -> dict[str, Any]:
        return {p.name: p.to_json() for p in self.parameters}

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SearchSpace:
        """From the mapping form: name -> {"low", "high", "step"?, "log"?} | {"choices"} | [values]."""
        if not isinstance(raw, Mapping):
            raise SearchSpaceError(
                "space", "the search space must be an object of parameter -> range or choices"
            )
        return cls(tuple(_parameter(str(name), spec) for name, spec in raw.items()))

    @classmethod
    def from_items(cls, items: Iterable[str]) -> SearchSpace:
        """From command-line items `name=low:high[:step|:log]` or `name=a,b,c`."""
        raw: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or not name or not text.strip():
                raise SearchSpaceError(name or item, f"{item!r} is not name=low:high[:step] or name=a,b,c")
            if name in raw:
                raise SearchSpaceError(name, "given more than once")
            raw[name] = _item(name, text.strip())
        return cls.parse(raw)

    @classmethod
    def from_file(cls, path: Path) -> SearchSpace:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SearchSpaceError("space", f"cannot read {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise SearchSpaceError("space", f"{path} is not JSON: {exc}") from None
        return cls.parse(raw)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _value(name: str, raw: Any, kind: type) -> float:
    if isinstance(raw, bool) or raw is None:
        raise SearchSpaceError(name, f"{raw!r} is not a number")
    try:
        number = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise SearchSpaceError(name, f"{raw!r} is not a number") from None
    if not number.is_finite():
        raise SearchSpaceError(name, f"{raw} is not a finite number")
    if kind is int:
        if number != number.to_integral_value():
            raise SearchSpaceError(name, f"{raw} is not a whole number")
        return int(number)
    return float(number)


def _parameter(name: str, spec: Any) -> Parameter:
    setting = tunable(name)
    if isinstance(spec, (list, tuple)):
        spec = {"choices": spec}
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(name, "give a range {low, high, step?, log?} or a list of choices")
    keys = set(spec)
    if "choices" in keys:
        if keys != {"choices"}:
            raise SearchSpaceError(name, "choices take no low, high, step or log")
        return _choice(name, setting, spec["choices"])
    unknown = keys - {"low", "high", "step", "log"}
    if unknown:
        raise SearchSpaceError(name, f"unknown key {min(unknown)!r} (low, high, step, log or choices)")
    for key in ("low", "high"):
        if spec.get(key) is None:
            raise SearchSpaceError(name, f"a range needs {key}")
    return _range(
        name,
        setting,
        _value(name, spec["low"], setting.kind),
        _value(name, spec["high"], setting.kind),
        None if spec.get("step") is None else _value(name, spec["step"], setting.kind),
        spec.get("log", False),
    )


def _choice(name: str, setting: Tunable, raw: Any) -> Choice:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SearchSpaceError(name, "choices must be a non-empty list")
    values = tuple(_value(name, v, setting.kind) for v in raw)
    if len(set(values)) != len(values):
        raise SearchSpaceError(name, "a choice is listed twice")
    for v in values:
        if (refusal := setting.refusal(v)) is not None:
            raise SearchSpaceError(name, refusal)
    return Choice(name, values)


def _range(name: str, setting: Tunable, low: float, high: float, step: float | None, log: Any) -> Range:
    if not isinstance(log, bool):
        raise SearchSpaceError(name, f"log must be true or false, got {log!r}")
    if not low < high:
        raise SearchSpaceError(name, f"low {_number(low)} must be below high {_number(high)}")
    for value in (low, high):
        if (refusal := setting.refusal(value)) is not None:
            raise SearchSpaceError(name, refusal)
    if log and low <= 0:
        raise SearchSpaceError(name, "a log scale needs low above 0")
    if step is not None:
        if step <= 0:
            raise SearchSpaceError(name, f"step {_number(step)} must be positive")
        if log and not (setting.kind is int and step == 1):
            raise SearchSpaceError(name, "a log scale takes no step")
        span = Decimal(str(high)) - Decimal(str(low))
        if span % Decimal(str(step)) != 0:
            raise SearchSpaceError(
                name,
                f"high {_number(high)} is not low {_number(low)} plus a whole number of steps {_number(step)}",
            )
    return Range(name, low, high, step, log)


def _item(name: str, text: str) -> Any:
    if ":" in text:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise SearchSpaceError(name, f"{text!r} is not low:high, low:high:step or low:high:log")
        spec: dict[str, Any] = {"low": parts[0], "high": parts[1]}
        if len(parts) == 3:
            if parts[2].lower() == "log":
                spec["log"] = True
            else:
                spec["step"] = parts[2]
        return spec
    return {"choices": [p.strip() for p in text.split(",") if p.strip()]}


def _extent(space: SearchSpace, name: str, default: int) -> tuple[float, float]:
    for p in space.parameters:
        if p.name == name:
            return (p.low, p.high) if isinstance(p, Range) else (min(p.choices), max(p.choices))
    return default, default


def _check_signal_windows(space: SearchSpace) -> None:
    """Some fast window must be shorter than some slow one; a trial drawing a pair that is
    not is infeasible (`signal_windows`), not a failure of the space."""
    if FAST not in space.names and SLOW not in space.names:
        return
    fast, slow = _extent(space, FAST, FAST_WINDOW), _extent(space, SLOW, SLOW_WINDOW)
    if fast[0] >= slow[1]:
        name = FAST if FAST in space.names else SLOW
        raise SearchSpaceError(
            name,
            f"the fast window ({_number(fast[0])} at least) is never shorter than the slow one "
            f"({_number(slow[1])} at most)",
        )


# -- applying a trial's parameters -----------------------------------------------------------


def signal_windows(params: Mapping[str, Any]) -> tuple[int, int]:
    """The momentum signal's (fast, slow) windows of a trial (defaults where not tuned)."""
    return int(params.get(FAST, FAST_WINDOW)), int(params.get(SLOW, SLOW_WINDOW))


def tunes_signal(params: Mapping[str, Any] | Sequence[str]) -> bool:
    return FAST in params or SLOW in params


def apply_parameters(config: BacktestConfig, params: Mapping[str, Any]) -> BacktestConfig:
    """`config` with a trial's engine settings (the signal's windows are `signal_windows`').
    Raises `SearchSpaceError` for a value outside its setting's bounds."""
    settings = config.settings
    for name, value in params.items():
        if (refusal := tunable(name).refusal(value)) is not None:
            raise SearchSpaceError(name, refusal)
        if name not in (FAST, SLOW):
            settings = _apply(settings, config.risk_tier, name, value)
    return replace(config, settings=settings)


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)


def _apply(settings: EngineSettings, tier: RiskTierName, name: str, value: Any) -> EngineSettings:
    tier_name, _, field = name.rpartition(".")
    if field in TIER_TUNABLES:
        which = RiskTierName(tier_name) if tier_name else tier
        tiers = dict(settings.tiers)
        tiers[which] = replace(tiers[which], **{field: _decimal(value)})
        return replace(settings, tiers=tiers)
    match name:
        case "max_open_positions":
            # As EngineSettings.from_row: the micro-trading limit is the same column.
            return replace(
                settings,
                max_open_positions=int(value),
                micro=replace(settings.micro, max_open_positions=int(value)),
            )
        case "absolute_position_cap":
            return replace(settings, sizing=replace(settings.sizing, absolute_position_cap=_decimal(value)))
        case "reserve_siphon_pct":
            return replace(settings, reserve=replace(settings.reserve, reserve_siphon_pct=_decimal(value)))
        case "trailing_activation_fraction":
            return replace(
                settings, stops=replace(settings.stops, trailing_activation_fraction=_decimal(value))
            )
        case "daily_loss_limit_pct":
            return replace(settings, breakers=replace(settings.breakers, daily_loss_pct=_decimal(value)))
        case "single_position_loss_pct":
            return replace(
                settings, breakers=replace(settings.breakers, single_position_loss_pct=_decimal(value))
            )
        case "gradual_entry_tranches":
            return replace(settings, gradual=replace(settings.gradual, tranche_count=int(value)))
    raise SearchSpaceError(name, "unknown parameter")


def check_space_for(space: SearchSpace, config: BacktestConfig) -> None:
    """Refuse a space the backtest cannot honour: signal windows without the momentum signal,
    or a tier's field named both bare and with the run's own tier."""
    if tunes_signal(space.names) and config.signals is not SignalSource.MOMENTUM:
        name = FAST if FAST in space.names else SLOW
        raise SearchSpaceError(
            name, "the signal's windows are tuned only with the momentum signal (--signals momentum)"
        )
    for field in TIER_TUNABLES:
        qualified = f"{config.risk_tier.value}.{field}"
        if field in space.names and qualified in space.names:
            raise SearchSpaceError(
                qualified, f"the same setting as {field} (the backtest's tier is {config.risk_tier.value})"
            )
