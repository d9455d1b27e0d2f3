"""Prometheus metrics of the trading engine (issue 6): what the loop did, and what the database
holds, exposed at `/metrics`.

Two kinds of figures, kept apart on purpose:

- counters this process increments as its engine ticks (`record_tick`): ticks, decisions by
  act/skip, order jobs sent, broker reports applied, exits, faults by component, tick duration
  and loop lag. They start at zero with the process, as Prometheus counters do;
- gauges read from PostgreSQL at scrape time (`DatabaseView`): decisions recorded by type and
  category (a skip's category is the decision check that refused it; an act's is `entry` or the
  exit rule that fired), faults recorded by component, circuit breaker state, and the engine's
  switches. They are the same from every process and survive restarts.

The registry is this module's own (not prometheus-client's global one), so creating several
apps in one process (tests) never registers a metric twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:  # the engine imports this module; no import cycle at run time
    from services.trading.live.engine import TickReport

disable_created_metrics()  # no `_created` twin of every counter: it only doubles the scrape
REGISTRY = CollectorRegistry(auto_describe=True)

TICKS = Counter("stonks_engine_ticks", "Engine loop ticks run by this process.", registry=REGISTRY)
DECISIONS = Counter(
    "stonks_engine_decisions",
    "Recommendations decided by this process, by outcome.",
    ["decision"],
    registry=REGISTRY,
)
ORDERS_SENT = Counter(
    "stonks_engine_orders_sent", "Order jobs delivered to the broker queue.", registry=REGISTRY
)
REPORTS_APPLIED = Counter(
    "stonks_engine_broker_reports_applied", "Broker fill and rejection reports applied.", registry=REGISTRY
)
EXITS = Counter(
    "stonks_engine_exits",
    "Exits decided by the engine's own rules (stops, take-profits, breakers, rebalancing).",
    registry=REGISTRY,
)
FAULTS = Counter(
    "stonks_engine_faults",
    "Loop steps that failed and were retried next tick, by component.",
    ["component"],
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "stonks_engine_tick_duration_seconds",
    "Wall time of one engine tick.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LOOP_LAG = Gauge(
    "stonks_engine_loop_lag_seconds",
    "How late the latest tick started after it was due (previous tick's end plus the polling "
    "interval); 0 when on time.",
    registry=REGISTRY,
)
LAST_TICK = Gauge(
    "stonks_engine_last_tick_timestamp_seconds", "Unix time the latest tick finished.", registry=REGISTRY
)

_last_tick_end: float | None = None


@dataclass(frozen=True, slots=True)
class TickTimer:
    started: float
    lag_seconds: float


def tick_started(polling_interval_seconds: float) -> TickTimer:
    """Call at the start of a tick: measures how late it is against the polling schedule."""
    now = time.monotonic()
    lag = 0.0 if _last_tick_end is None else max(0.0, now - _last_tick_end - polling_interval_seconds)
    return TickTimer(now, lag)


def record_tick(report: TickReport, timer: TickTimer) -> TickReport:
    """Count one finished tick; returns `report` so the engine can `return record_tick(...)`."""
    global _last_tick_end
    _last_tick_end = time.monotonic()
    TICKS.inc()
    TICK_SECONDS.observe(_last_tick_end - timer.started)
    LOOP_LAG.set(timer.lag_seconds)
    LAST_TICK.set(time.time())
    DECISIONS.labels("act").inc(report.acted)
    DECISIONS.labels("skip").inc(max(report.decisions - report.acted, 0))
    ORDERS_SENT.inc(report.orders_sent)
    REPORTS_APPLIED.inc(report.reports_applied)
    EXITS.inc(report.exits)
    for fault in report.faults:
        FAULTS.labels(fault.split(":", 1)[0].strip() or "unknown").inc()
    return report


@dataclass(frozen=True, slots=True)
class DatabaseView:
    """What `/metrics` reads from PostgreSQL at scrape time."""

    decisions: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (decision, category) -> count
    faults: Mapping[str, int] = field(default_factory=dict)  # component -> count
    breaker_active: bool = False
    breaker_trigger: str | None = None
    tickers_in_cooldown: int = 0
    enabled: bool = False
    paused: bool = False
    engine_attached: bool = False
    engine_running: bool = False
    engine_holds_lock: bool = False


class _DatabaseCollector:
    """Yields the gauges of the `DatabaseView` handed to `render`."""

    def __init__(self) -> None:
        self.view: DatabaseView | None = None

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        view = self.view
        if view is None:
            return
        decisions = GaugeMetricFamily(
            "stonks_decisions_recorded",
            "Decisions in the database, by outcome and "
            "category (the refusing check of a skip; entry or the exit rule of an act).",
            labels=["decision", "category"],
        )
        for (decision, category), count in sorted(view.decisions.items()):
            decisions.add_metric([decision, category], count)
        yield decisions
        faults = GaugeMetricFamily(
            "stonks_engine_faults_recorded",
            "Faults the loop recorded in the database, by component.",
            labels=["component"],
        )
        for component, count in sorted(view.faults.items()):
            faults.add_metric([component], count)
        yield faults
        breaker = GaugeMetricFamily(
            "stonks_circuit_breaker_active",
            "1 while a trading halt is in force, by trigger.",
            labels=["trigger"],
        )
        breaker.add_metric([view.breaker_trigger or "none"], 1 if view.breaker_active else 0)
        yield breaker
        yield GaugeMetricFamily(
            "stonks_tickers_in_cooldown",
            "Tickers barred from re-entry after a single-position breaker.",
            value=view.tickers_in_cooldown,
        )
        for name, value, text in (
            ("stonks_engine_enabled", view.enabled, "1 when the owner has enabled trading."),
            ("stonks_engine_paused", view.paused, "1 while the owner has paused trading."),
            ("stonks_engine_attached", view.engine_attached, "1 when this process serves an engine."),
            ("stonks_engine_running", view.engine_running, "1 when this process's engine has started."),
            (
                "stonks_engine_holds_lock",
                view.engine_holds_lock,
                ("1 when this process's engine holds the account lock."),
            ),
        ):
            yield GaugeMetricFamily(name, text, value=1 if value else 0)


_DATABASE = _DatabaseCollector()
REGISTRY.register(_DATABASE)


def render(view: DatabaseView) -> bytes:
    """The exposition text: this process's counters and `view`'s gauges. Synchronous, so two
    concurrent scrapes cannot mix their views."""
    _DATABASE.view = view
    try:
        return generate_latest(REGISTRY)
    finally:
        _DATABASE.view = None
