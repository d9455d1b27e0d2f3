"""Where time comes from. The decision core never reads the wall clock; it is handed a
`Clock` (or a plain `datetime`), so the live loop, the backtester and the tests can run the
same rules on real, simulated or frozen time (STYLE principle 4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class SimulatedClock:
    """A clock that moves only when told to: used by the demo replay, backtests and tests."""

    current: datetime

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware datetime")

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> datetime:
        self.current = self.current + delta
        return self.current

    def set(self, instant: datetime) -> datetime:
        if instant.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware datetime")
        self.current = instant
        return self.current
