"""What an optimization is asked to do (issue 16): the backtest it varies, the search space, the
objective and its constraints, the sampler, and for a walk-forward run its windows.

Frozen, validated once, with errors naming the field (`OptimizationConfigError`, a
`BacktestConfigError`, so the CLI's one line and the API's 422 treat both alike). Stored whole
in `optimization_runs.config`, from which `--resume` rebuilds it exactly.

A search starts from the engine's default settings at the chosen tier, as `stonks backtest`
does, whatever the owner's configuration: a run is then reproducible and resumable however
the configuration changes meanwhile (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.trading.backtest.config import FILL_INPUTS, RUN_INPUTS, BacktestConfig, BacktestConfigError
from services.trading.optimize.objective import Constraints, Objective, ObjectiveError, objective
from services.trading.optimize.search_space import SearchSpace, SearchSpaceError, check_space_for

MAX_TRIALS = 100_000
MAX_SEED = 2**32 - 1


class OptimizationConfigError(BacktestConfigError):
    """A bad optimization request; `field` names the input (`space.<parameter>` for the space)."""


class SamplerName(StrEnum):
    TPE = "tpe"
    GRID = "grid"
    RANDOM = "random"


@dataclass(frozen=True, slots=True)
class WalkForward:
    """Windows of `train` sessions searched, then `test` sessions run unseen, moving on by
    `step` sessions (default `test`); `anchored`: every train period starts at the start."""

    train: int
    test: int
    step: int | None = None
    anchored: bool = False

    def __post_init__(self) -> None:
        for name in ("train", "test", "step"):
            value = getattr(self, name)
            if value is None and name == "step":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptimizationConfigError(
                    name, f"{name} must be a whole number of sessions, 1 or more, got {value!r}"
                )
        if self.train < 20:
            raise OptimizationConfigError(
                "train", f"a train period of {self.train} sessions is too short to search (20 at least)"
            )

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train, "test": self.test, "step": self.step, "anchored": self.anchored}


@dataclass(frozen=True, slots=True)
class OptimizationConfig:
    backtest: BacktestConfig  # the whole range; a walk-forward's windows lie inside it
    space: SearchSpace
    objective: Objective = Objective.SHARPE
    constraints: Constraints = Constraints()
    sampler: SamplerName = SamplerName.TPE
    seed: int = 0
    trials: int = 50  # per search (per window in a walk-forward)
    walk_forward: WalkForward | None = None
    # Trials in flight at once; fixed when the run starts (Ray's CPUs) and kept on resume, as
    # the sampler's suggestions depend on it (runner.py).
    parallelism: int | None = None

    def __post_init__(self) -> None:
        # Loose but unambiguous input is normalised, as BacktestConfig does (names of enums).
        if not isinstance(self.sampler, SamplerName):
            object.__setattr__(self, "sampler", _sampler(self.sampler))
        if not isinstance(self.objective, Objective):
            try:
                object.__setattr__(self, "objective", objective(self.objective))
            except ObjectiveError as exc:
                raise OptimizationConfigError(exc.field, str(exc)) from None
        if (
            isinstance(self.trials, bool)
            or not isinstance(self.trials, int)
            or not 1 <= self.trials <= MAX_TRIALS
        ):
            raise OptimizationConfigError("trials", f"trials must be 1..{MAX_TRIALS}, got {self.trials!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise OptimizationConfigError(
                "seed", f"seed must be a whole number 0..{MAX_SEED}, got {self.seed!r}"
            )
        if self.parallelism is not None and (not isinstance(self.parallelism, int) or self.parallelism < 1):
            raise OptimizationConfigError(
                "parallelism", f"parallelism must be 1 or more, got {self.parallelism!r}"
            )
        try:
            check_space_for(self.space, self.backtest)
            if self.sampler is SamplerName.GRID:
                self.space.grid()
        except SearchSpaceError as exc:
            raise _space_error(exc) from None

    @property
    def kind(self) -> str:
        return "search" if self.walk_forward is None else "walk_forward"

    @property
    def trials_per_search(self) -> int:
        """Grid: no more trials than grid points (each is tried once)."""
        return min(self.trials, self.space.grid_size) if self.sampler is SamplerName.GRID else self.trials

    @classmethod
    def parse(cls, **raw: Any) -> OptimizationConfig:
        """From loose input (CLI strings, API JSON, or a stored config's `to_json`), the first
        bad field raised as `OptimizationConfigError`/`BacktestConfigError`."""
        raw = dict(raw)
        backtest_raw = raw.pop("backtest", None) or {
            k: raw.pop(k) for k in (*RUN_INPUTS, *FILL_INPUTS) if k in raw
        }
        space = raw.pop("space", None)
        if space is None:
            raise OptimizationConfigError("space", "a search needs a space: at least one parameter")
        try:
            parsed_space = space if isinstance(space, SearchSpace) else SearchSpace.parse(space)
            objective_ = objective(raw.pop("objective", None) or Objective.SHARPE)
            constraints = raw.pop("constraints", None) or {}
            constraints = Constraints(
                min_trades=_int("min_trades", raw.pop("min_trades", constraints.get("min_trades", 0)) or 0),
                max_drawdown=_fraction(
                    "max_drawdown", raw.pop("max_drawdown", constraints.get("max_drawdown"))
                ),
            )
        except SearchSpaceError as exc:
            raise _space_error(exc) from None
        except ObjectiveError as exc:
            raise OptimizationConfigError(exc.field, str(exc)) from None
        walk = raw.pop("walk_forward", None)
        unknown = set(raw) - {"sampler", "seed", "trials", "parallelism", "kind"}
        if unknown:
            name = min(unknown)
            raise OptimizationConfigError(name, f"unknown optimization option {name!r}")
        return cls(
            backtest=BacktestConfig.parse(**backtest_raw),
            space=parsed_space,
            objective=objective_,
            constraints=constraints,
            sampler=_sampler(raw.get("sampler") or SamplerName.TPE),
            seed=_int("seed", raw.get("seed", 0) if raw.get("seed") is not None else 0),
            trials=_int("trials", raw.get("trials", 50) if raw.get("trials") is not None else 50),
            walk_forward=None if walk is None else _walk_forward(walk),
            parallelism=None if raw.get("parallelism") is None else _int("parallelism", raw["parallelism"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "backtest": self.backtest.to_input(),
            "space": self.space.to_json(),
            "objective": self.objective.value,
            "constraints": self.constraints.to_json(),
            "sampler": self.sampler.value,
            "seed": self.seed,
            "trials": self.trials,
            "walk_forward": None if self.walk_forward is None else self.walk_forward.to_json(),
            "parallelism": self.parallelism,
        }


def _space_error(exc: SearchSpaceError) -> OptimizationConfigError:
    field = "space" if exc.parameter == "space" else f"space.{exc.parameter}"
    return OptimizationConfigError(field, str(exc))


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise OptimizationConfigError(name, f"{name} must be a whole number, got {value!r}")
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise OptimizationConfigError(name, f"{name} {value!r} is not a whole number") from None
    if number != int(number):
        raise OptimizationConfigError(name, f"{name} {value!r} is not a whole number")
    return int(number)


def _fraction(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1)
    except ValueError:
        raise OptimizationConfigError(name, f"{name} {value!r} is not a number") from None
    if not 0 < number <= 1:
        raise OptimizationConfigError(
            name, f"{name} must be a fraction in (0, 1] (or a percentage), got {value!r}"
        )
    return number


def _sampler(value: Any) -> SamplerName:
    try:
        return SamplerName(str(value).strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in SamplerName)
        raise OptimizationConfigError(
            "sampler", f"unknown sampler {value!r}: choose one of {names}"
        ) from None


def _walk_forward(raw: Any) -> WalkForward:
    if isinstance(raw, WalkForward):
        return raw
    if not isinstance(raw, Mapping):
        raise OptimizationConfigError("walk_forward", "walk_forward must be {train, test, step?, anchored?}")
    unknown = set(raw) - {"train", "test", "step", "anchored"}
    if unknown:
        name = min(unknown)
        raise OptimizationConfigError(name, f"unknown walk-forward option {name!r}")
    for name in ("train", "test"):
        if raw.get(name) is None:
            raise OptimizationConfigError(name, f"a walk-forward run needs --{name} (sessions)")
    step = raw.get("step")
    return WalkForward(
        train=_int("train", raw["train"]),
        test=_int("test", raw["test"]),
        step=None if step is None else _int("step", step),
        anchored=bool(raw.get("anchored", False)),
    )
