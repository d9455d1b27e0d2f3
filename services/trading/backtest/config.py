"""What a backtest is asked to do: dates, capital, tier, universe, signal source and fill model
(seed task 19.1). Frozen values, validated once, with errors naming the field and the reason
(docs/contracts.md section 7: the API answers 422 with both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.shared.schemas import RiskTierName
from services.shared.tickers import is_ticker
from services.trading.core.engine_settings import TIER_FIELDS, EngineSettings
from services.trading.core.trading_window import CALENDAR_END, CALENDAR_START

MAX_SLIPPAGE_BPS = Decimal(1000)
DEFAULT_SLIPPAGE_BPS = Decimal(5)  # docs/contracts.md section 4: the paper broker's default

# The loose inputs `BacktestConfig.parse` takes and `BacktestConfig.to_input` gives back, by
# name: the run's own, and the fill model's (folded into one `FillModel`). Named here once so a
# caller that carries a backtest's inputs among its own (the optimizer) picks out the same ones.
RUN_INPUTS = (
    "start_date",
    "end_date",
    "initial_capital",
    "risk_tier",
    "tickers",
    "signals",
    "csv_path",
    "rebalance_weekly",
)
FILL_INPUTS = (
    "slippage_bps",
    "commission_per_order",
    "commission_per_share",
    "commission_pct",
    "tranche_spacing_sessions",
    "fill_timing",
)


class BacktestConfigError(ValueError):
    """A bad backtest request: `field` names the input, the message says what is wrong."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class SignalSource(StrEnum):
    DATABASE = "database"  # the `recommendations` table for the range
    MOMENTUM = "momentum"  # the sample SMA 10/30 crossover signal, computed from the bars
    CSV = "csv"  # a file of recommendations


@dataclass(frozen=True, slots=True)
class CommissionModel:
    """Commission per fill: `per_order + per_share * quantity + pct_of_notional * value`.
    The default is zero (a commission-free broker)."""

    per_order: Decimal = Decimal(0)
    per_share: Decimal = Decimal(0)
    pct_of_notional: Decimal = Decimal(0)

    def commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        if not (self.per_order or self.per_share or self.pct_of_notional):
            return Decimal(0)
        return self.per_order + self.per_share * quantity + self.pct_of_notional * quantity * price


class FillTiming(StrEnum):
    """When, within a session, orders and exits meet a daily bar."""

    # Exits on the bar's whole range (low, high); orders at the open; later tranches whole
    # sessions apart. The closest a daily bar gets to a real session.
    BAR_RANGE = "bar_range"
    # As the live engine sees daily bars (the demo's replay): the open is the price all session
    # long, visited at the replay's instants (protection, decisions, each tranche's half hour,
    # the window's last minute), the close at the close. What the live stack would have done.
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class FillModel:
    """How orders meet daily bars (stated in `describe`, stored with every run).

    - Market orders fill at the open of the bar they are due on, moved `slippage_bps` against
      the trader (buys higher, sells lower).
    - Stops, take-profits and the single-position breaker are checked against each bar's
      low and high; a gap through a level fills at the open; when one bar touches both the
      stop and the take-profit, the stop is assumed to have come first.
    - Tranche i of a gradual entry fills `tranche_spacing_sessions * (i - 1)` sessions after
      the first (0: all at the same open).
    - Fill prices are on the broker's price step ($0.0001), as the paper broker's are.

    That is `FillTiming.BAR_RANGE`; `FillTiming.LIVE` times a session as the live engine does.
    """

    slippage_bps: Decimal = DEFAULT_SLIPPAGE_BPS
    commission: CommissionModel = CommissionModel()
    tranche_spacing_sessions: int = 1
    timing: FillTiming = FillTiming.BAR_RANGE

    @property
    def slippage(self) -> Decimal:
        return self.slippage_bps / Decimal(10_000)

    def describe(self) -> str:
        c = self.commission
        if self.timing is FillTiming.LIVE:
            return (
                f"as the live engine replays daily bars: the open is the price all session, orders fill "
                f"at it {self.slippage_bps} bps against the trader, stops and take-profits are checked "
                "against it at the replay's instants, later tranches follow 30 minutes apart; "
                f"commission {c.per_order} per order + {c.per_share} per share + {c.pct_of_notional} of value"
            )
        return (
            f"market orders fill at the open of their bar {self.slippage_bps} bps against the trader; stops, "
            "take-profits and the single-position breaker are checked against each bar's low/high, a gap "
            "through a level fills at the open, and a bar touching both stop and take-profit takes the stop; "
            f"commission {c.per_order} per order + {c.per_share} per share + {c.pct_of_notional} of value; "
            f"gradual-entry tranches {self.tranche_spacing_sessions} session(s) apart"
        )


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """One backtest. `settings` are the engine settings to replay with (enabled, at the chosen
    tier); `tickers` empty means every ticker with daily bars in the range."""

    start_date: date
    end_date: date
    initial_capital: Decimal
    risk_tier: RiskTierName
    tickers: tuple[str, ...] = ()
    signals: SignalSource = SignalSource.DATABASE
    csv_path: Path | None = None
    fill: FillModel = FillModel()
    rebalance_weekly: bool = True
    settings: EngineSettings = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # Loose but unambiguous input is normalised (a tier or source by name, a list of tickers).
        if not isinstance(self.risk_tier, RiskTierName):
            object.__setattr__(self, "risk_tier", _tier(self.risk_tier))
        if not isinstance(self.signals, SignalSource):
            object.__setattr__(self, "signals", _signals(self.signals))
        if not isinstance(self.initial_capital, Decimal):
            object.__setattr__(self, "initial_capital", _decimal("initial_capital", self.initial_capital))
        object.__setattr__(self, "tickers", _tickers(self.tickers))
        _validate(self)
        settings = self.settings or EngineSettings(enabled=True, risk_tier=self.risk_tier)
        object.__setattr__(
            self, "settings", replace(settings, enabled=True, paused=False, risk_tier=self.risk_tier)
        )

    @classmethod
    def parse(cls, **raw: Any) -> BacktestConfig:
        """Build from loose input (strings from the CLI or JSON from the API), with one clear
        `BacktestConfigError` for the first bad field."""
        fill = raw.pop("fill", None) or FillModel(
            slippage_bps=_decimal("slippage_bps", raw.pop("slippage_bps", DEFAULT_SLIPPAGE_BPS)),
            commission=CommissionModel(
                per_order=_decimal("commission_per_order", raw.pop("commission_per_order", 0)),
                per_share=_decimal("commission_per_share", raw.pop("commission_per_share", 0)),
                pct_of_notional=_decimal("commission_pct", raw.pop("commission_pct", 0)),
            ),
            tranche_spacing_sessions=_int("tranche_spacing_sessions", raw.pop("tranche_spacing_sessions", 1)),
            timing=_timing(raw.pop("fill_timing", FillTiming.BAR_RANGE.value)),
        )
        unknown = set(raw) - {*RUN_INPUTS, "settings"}
        if unknown:
            name = min(unknown)
            raise BacktestConfigError(name, f"unknown backtest option {name!r}")
        for name in ("start_date", "end_date", "initial_capital"):
            if raw.get(name) in (None, ""):
                raise BacktestConfigError(name, f"{name} is required")
        csv_path = raw.pop("csv_path", None)
        signals = raw.pop("signals", None) or (SignalSource.CSV if csv_path else SignalSource.DATABASE)
        return cls(
            start_date=_date("start_date", raw.pop("start_date")),
            end_date=_date("end_date", raw.pop("end_date")),
            initial_capital=_decimal("initial_capital", raw.pop("initial_capital")),
            risk_tier=_tier(raw.pop("risk_tier", RiskTierName.MODERATE)),
            tickers=_tickers(raw.pop("tickers", None)),
            signals=_signals(signals),
            csv_path=Path(csv_path) if csv_path else None,
            fill=fill,
            **raw,
        )

    def to_input(self) -> dict[str, Any]:
        """`parse`'s input that rebuilds this config (when its settings are the defaults)."""
        c = self.fill.commission
        return {
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "initial_capital": str(self.initial_capital),
            "risk_tier": self.risk_tier.value,
            "tickers": list(self.tickers),
            "signals": self.signals.value,
            "csv_path": str(self.csv_path) if self.csv_path else None,
            "slippage_bps": str(self.fill.slippage_bps),
            "commission_per_order": str(c.per_order),
            "commission_per_share": str(c.per_share),
            "commission_pct": str(c.pct_of_notional),
            "tranche_spacing_sessions": self.fill.tranche_spacing_sessions,
            "fill_timing": self.fill.timing.value,
            "rebalance_weekly": self.rebalance_weekly,
        }

    def to_json(self) -> dict[str, Any]:
        """The config as stored in `backtest_runs.config`: the run's inputs, its fill model in
        full and the settings it ran with."""
        given, c = self.to_input(), self.fill.commission
        return {
            **{name: given[name] for name in RUN_INPUTS},
            "fill": {
                "slippage_bps": str(self.fill.slippage_bps),
                "commission": {
                    "per_order": str(c.per_order),
                    "per_share": str(c.per_share),
                    "pct_of_notional": str(c.pct_of_notional),
                },
                "tranche_spacing_sessions": self.fill.tranche_spacing_sessions,
                "timing": self.fill.timing.value,
                "statement": self.fill.describe(),
            },
            "max_open_positions": self.settings.max_open_positions,
            "tier": {name: str(getattr(self.settings.tier, name)) for name in TIER_FIELDS},
            "gradual_entry": {
                "tranches": self.settings.gradual.tranche_count,
                "threshold_dollars": str(self.settings.gradual.threshold_dollars),
            },
        }


def _validate(config: BacktestConfig) -> None:
    for name in ("start_date", "end_date"):
        value = getattr(config, name)
        if not isinstance(value, date):
            raise BacktestConfigError(name, f"{name} must be a date, got {value!r}")
        if not CALENDAR_START <= value <= CALENDAR_END:
            raise BacktestConfigError(
                name, f"{name} {value} is outside the market calendar ({CALENDAR_START} .. {CALENDAR_END})"
            )
    if config.end_date < config.start_date:
        raise BacktestConfigError(
            "end_date", f"end date {config.end_date} is before start date {config.start_date}"
        )
    capital = config.initial_capital
    if not isinstance(capital, Decimal) or not capital.is_finite() or capital <= 0:
        raise BacktestConfigError(
            "initial_capital", f"initial capital must be a positive amount, got {capital}"
        )
    if not isinstance(config.risk_tier, RiskTierName):
        raise BacktestConfigError("risk_tier", f"unknown risk tier {config.risk_tier!r}")
    for ticker in config.tickers:
        if not is_ticker(ticker):
            raise BacktestConfigError("tickers", f"{ticker!r} is not a ticker symbol")
    if config.signals is SignalSource.CSV and config.csv_path is None:
        raise BacktestConfigError("csv_path", "signals from a CSV need the path of the CSV file")
    fill = config.fill
    if not fill.slippage_bps.is_finite() or not 0 <= fill.slippage_bps <= MAX_SLIPPAGE_BPS:
        raise BacktestConfigError(
            "slippage_bps", f"slippage must be 0..{MAX_SLIPPAGE_BPS} bps, got {fill.slippage_bps}"
        )
    c = fill.commission
    for name, value in (
        ("commission_per_order", c.per_order),
        ("commission_per_share", c.per_share),
        ("commission_pct", c.pct_of_notional),
    ):
        if not value.is_finite() or value < 0:
            raise BacktestConfigError(name, f"{name} must be zero or positive, got {value}")
    if fill.tranche_spacing_sessions < 0:
        raise BacktestConfigError("tranche_spacing_sessions", "tranche spacing must be 0 or more sessions")


def _date(name: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise BacktestConfigError(name, f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def _decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, float) and not math.isfinite(value):
        raise BacktestConfigError(name, f"{name} must be a finite number, got {value}")
    try:
        result = Decimal(str(value).strip().replace(",", "").lstrip("$"))
    except (InvalidOperation, ValueError):
        raise BacktestConfigError(name, f"{name} {value!r} is not a number") from None
    if not result.is_finite():
        raise BacktestConfigError(name, f"{name} must be a finite number, got {value}")
    return result


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BacktestConfigError(name, f"{name} {value!r} is not a whole number") from None


def _timing(value: Any) -> FillTiming:
    try:
        return FillTiming(str(value).strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in FillTiming)
        raise BacktestConfigError("fill_timing", f"fill timing {value!r} is not one of {names}") from None


def _tier(value: Any) -> RiskTierName:
    try:
        return RiskTierName(str(value).strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in RiskTierName)
        raise BacktestConfigError(
            "risk_tier", f"unknown risk tier {value!r}: choose one of {names}"
        ) from None


def _signals(value: Any) -> SignalSource:
    try:
        return SignalSource(str(value).strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in SignalSource)
        raise BacktestConfigError(
            "signals", f"unknown signal source {value!r}: choose one of {names}"
        ) from None


def _tickers(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    items = (
        value.split(",") if isinstance(value, str) else [part for v in value for part in str(v).split(",")]
    )
    tickers = tuple(dict.fromkeys(t.strip().upper() for t in items if t.strip()))
    for ticker in tickers:
        if not is_ticker(ticker):
            raise BacktestConfigError("tickers", f"{ticker!r} is not a ticker symbol")
    return tickers
