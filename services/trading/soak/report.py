"""What a soak reports: what it tried, the faults it injected, the invariants and their
results, and the engine process's resident memory over time (a table and a PNG chart).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.trading.soak.invariants import InvariantResult
from services.trading.soak.stack import EngineExit, FaultEvent

MB = 1024 * 1024
MEMORY_WARMUP_SECONDS = 60.0  # the growth of a process is measured after its first minute
TABLE_ROWS = 16


@dataclass(frozen=True, slots=True)
class MemorySample:
    at_seconds: float
    pid: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """One engine process's resident memory: where it started, ended and peaked, its growth
    after the warm-up minute and the trend over its second half (MB per minute)."""

    pid: int
    seconds: float
    first_mb: float
    last_mb: float
    peak_mb: float
    growth_after_warmup_mb: float | None  # None: it did not live past its warm-up
    late_slope_mb_per_minute: float


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return 0.0 if spread == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def process_memory(samples: tuple[MemorySample, ...]) -> list[ProcessMemory]:
    by_pid: dict[int, list[MemorySample]] = {}
    for sample in samples:
        by_pid.setdefault(sample.pid, []).append(sample)
    result = []
    for pid, series in by_pid.items():
        start = series[0].at_seconds
        warm = [s for s in series if s.at_seconds - start >= MEMORY_WARMUP_SECONDS]
        half = series[len(series) // 2 :]
        result.append(
            ProcessMemory(
                pid,
                series[-1].at_seconds - start,
                series[0].rss_bytes / MB,
                series[-1].rss_bytes / MB,
                max(s.rss_bytes for s in series) / MB,
                (series[-1].rss_bytes - warm[0].rss_bytes) / MB if warm else None,
                _slope([(s.at_seconds / 60, s.rss_bytes / MB) for s in half]),
            )
        )
    return result


@dataclass(frozen=True)
class SoakReport:
    plan: dict[str, Any]
    duration_seconds: float
    tries: dict[str, int]
    write_failures: int
    decisions: dict[str, int]
    broker_orders: dict[str, int]
    closed_trades: int
    realized_pnl: str
    faults: tuple[FaultEvent, ...]
    engine_starts: int
    engine_exits: tuple[EngineExit, ...]
    stopped_cleanly: bool
    invariants: tuple[InvariantResult, ...]
    memory: tuple[MemorySample, ...]
    engine_faults: tuple[tuple[str, str, int], ...] = ()
    directory: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.invariants)

    def failed(self) -> list[InvariantResult]:
        return [result for result in self.invariants if not result.passed]

    def to_json(self) -> str:
        data = asdict(self)
        data["invariants"] = [{**asdict(r), "passed": r.passed} for r in self.invariants]
        data["process_memory"] = [asdict(p) for p in process_memory(self.memory)]
        return json.dumps(data, indent=2, default=str)

    def text(self) -> str:
        tries = sum(self.tries.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.tries.items()))
        faults: dict[str, int] = {}
        for event in self.faults:
            faults[event.kind] = faults.get(event.kind, 0) + 1
        lines = [
            (
                f"soak: {self.duration_seconds:.0f} s at {self.plan['rate']}/s, faults: "
                f"{', '.join(self.plan['faults']) or 'none'}, seed {self.plan['seed']}"
            ),
            f"tries: {tries} recommendations written ({kinds}); {self.write_failures} writes failed",
            (
                f"decisions: {_counts(self.decisions)}; broker orders: {_counts(self.broker_orders)}; "
                f"closed trades: {self.closed_trades}, realized P&L {self.realized_pnl}"
            ),
            f"faults injected: {len(self.faults)} ({_counts(faults) or 'none'}); engine started "
            f"{self.engine_starts} times, exited on its own {len(self.engine_exits)} times; "
            + (
                "stopped cleanly on SIGTERM"
                if self.stopped_cleanly
                else "did NOT stop cleanly on SIGTERM (timed out or exited with an error)"
            ),
        ]
        if self.engine_faults:
            lines.append("engine faults recorded (component, error, count):")
            lines += [f"  {component}: {error} x{count}" for component, error, count in self.engine_faults]
        lines += list(self.notes)
        passed = sum(r.passed for r in self.invariants)
        lines += ["", f"invariants: {passed} of {len(self.invariants)} hold"]
        lines += [result.describe() for result in self.invariants]
        lines += ["", self.memory_table()]
        return "\n".join(lines) + "\n"

    def memory_table(self) -> str:
        if not self.memory:
            return "resident memory: no samples"
        step = max(1, len(self.memory) // TABLE_ROWS)
        first_of: dict[int, int] = {}
        for sample in self.memory:
            first_of.setdefault(sample.pid, sample.rss_bytes)
        rows = ["resident memory of the engine process:", "   time      pid   RSS MB   since its start MB"]
        for sample in [*self.memory[::step], self.memory[-1]][: TABLE_ROWS + 1]:
            minutes, seconds = divmod(int(sample.at_seconds), 60)
            rows.append(
                f"  {minutes:3d}:{seconds:02d}  {sample.pid:7d}  {sample.rss_bytes / MB:7.1f}  "
                f"{(sample.rss_bytes - first_of[sample.pid]) / MB:+8.1f}"
            )
        for p in process_memory(self.memory):
            growth = (
                "lived less than a minute"
                if p.growth_after_warmup_mb is None
                else f"{p.growth_after_warmup_mb:+.1f} MB after its first minute"
            )
            rows.append(
                f"  pid {p.pid}: {p.seconds / 60:.1f} min, {p.first_mb:.1f} -> {p.last_mb:.1f} MB "
                f"(peak {p.peak_mb:.1f}); {growth}, {p.late_slope_mb_per_minute:+.2f} MB/min over its "
                f"second half"
            )
        return "\n".join(rows)

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "report.json", directory / "report.txt"]
        paths[0].write_text(self.to_json())
        paths[1].write_text(self.text())
        if self.memory:
            paths.append(plot_memory(self, directory / "memory.png"))
        return paths


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


def plot_memory(report: SoakReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5))
    by_pid: dict[int, list[MemorySample]] = {}
    for sample in report.memory:
        by_pid.setdefault(sample.pid, []).append(sample)
    for pid, series in by_pid.items():
        axes.plot(
            [s.at_seconds / 60 for s in series],
            [s.rss_bytes / MB for s in series],
            marker=".",
            label=f"pid {pid}" if len(by_pid) <= 6 else None,
        )
    for event in report.faults:
        axes.axvline(
            event.at_seconds / 60,
            color="tab:red" if "engine" in event.kind else "tab:gray",
            alpha=0.4,
            linewidth=1,
        )
    axes.set_xlabel("minutes into the soak")
    axes.set_ylabel("resident memory (MB)")
    axes.set_title(
        f"engine process RSS at {report.plan['rate']} recommendations/s; "
        f"{len(report.faults)} faults (vertical lines)",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    if len(by_pid) <= 6:
        axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
