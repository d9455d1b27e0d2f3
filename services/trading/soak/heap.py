"""Where an engine process's memory goes: Python allocations traced (tracemalloc) and the
growth since a warm-up baseline written as text, grouped by traceback and by line.

A leak is growth that keeps rising with every report, from the same traceback; a cache or a
pool fills up and then stays flat. Tracing slows the process a lot (each snapshot stops its
event loop for seconds, and the traces double its memory), so the soak turns it on only when
asked (`--tracemalloc`) and its latency and RSS figures then describe the tracer, not the
engine.
"""

from __future__ import annotations

import asyncio
import linecache
import time
import tracemalloc
from pathlib import Path

# Deep enough to reach the engine's own frames under asyncio's; deeper only slows the snapshots.
TRACEBACK_FRAMES = 12
TOP = 20
# The tracer's own allocations: its module, and the source lines it reads to print tracebacks.
_IGNORED = (
    tracemalloc.__file__,
    linecache.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)


def start_tracing() -> None:
    tracemalloc.start(TRACEBACK_FRAMES)


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, name) for name in _IGNORED])


def growth_text(baseline: tracemalloc.Snapshot, current: tracemalloc.Snapshot, elapsed: float) -> str:
    """The largest growths since `baseline`: by line first (short), then by whole traceback."""
    traced, peak = tracemalloc.get_traced_memory()
    lines = [
        f"# {elapsed:.0f} s after start; traced now {traced / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB",
        (
            f"# growth since the baseline: "
            f"{sum(s.size_diff for s in current.compare_to(baseline, 'filename')) / 1e6:+.2f} MB"
        ),
        "",
        "## by line",
    ]
    for stat in current.compare_to(baseline, "lineno")[:TOP]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks  {frame.filename}:{frame.lineno}"
        )
    lines += ["", "## by traceback (most recent call last)"]
    for stat in current.compare_to(baseline, "traceback")[:TOP]:
        lines.append(
            f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks (now {stat.size / 1024:.1f} KiB)"
        )
        lines += [f"    {line}" for line in stat.traceback.format()]
    return "\n".join(lines) + "\n"


async def watch_growth(directory: Path, warmup_seconds: float, every_seconds: float) -> None:
    """After `warmup_seconds`, take the baseline; then every `every_seconds`, and once more
    when cancelled (the process stopping), write the growth to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    await asyncio.sleep(warmup_seconds)
    baseline = _snapshot()
    try:
        while True:
            await asyncio.sleep(every_seconds)
            _write(directory, baseline, started)
    finally:
        _write(directory, baseline, started)


def _write(directory: Path, baseline: tracemalloc.Snapshot, started: float) -> None:
    elapsed = time.monotonic() - started
    (directory / f"growth-{elapsed:06.0f}s.txt").write_text(growth_text(baseline, _snapshot(), elapsed))
