"""Parameter-search throughput (issue 16): trials per second on a local Ray of 1 and 2 CPUs.

Workload: the bundled real sample (AAPL, GOOG, IBM, MSFT) over 2003-2012 with the momentum
signal at the aggressive tier; a random search over reward_risk_ratio (1..3 by 0.25),
stop_loss_atr_multiplier (1..3) and signal_fast_window (5..25), N trials (default 24), each a
full backtest through `Backtester.run`, stored in PostgreSQL as it finishes (the configured
database, or the private servers as every command starts them).

Reported per CPU count, each in a fresh process (its own Ray):
- `wall_s`: from the call to the last trial stored, Ray's start-up included;
- `steady_trials_per_s`: trials after the first wave (whose workers import the engine first)
  over the time they took: what a long search runs at.

Run: `python bench/optimize/run.py [trials] [cpus ...]` (default 24 trials, 1 and 2 CPUs).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

START, END = date(2003, 1, 2), date(2012, 12, 31)


async def one(trials: int, cpus: int) -> dict:
    from services.shared.config import load_config
    from services.shared.db import connect
    from services.shared.migrations import upgrade
    from services.shared.runtime import resolve_server_urls
    from services.trading.backtest import sample_backtest_data
    from services.trading.optimize import store
    from services.trading.optimize.config import OptimizationConfig
    from services.trading.optimize.runner import planned_trials, run_optimization

    config = OptimizationConfig.parse(
        start_date=START.isoformat(),
        end_date=END.isoformat(),
        initial_capital="10000",
        risk_tier="aggressive",
        signals="momentum",
        space={
            "reward_risk_ratio": {"low": 1, "high": 3, "step": 0.25},
            "stop_loss_atr_multiplier": {"low": 1, "high": 3},
            "signal_fast_window": {"low": 5, "high": 25},
        },
        sampler="random",
        trials=trials,
        seed=1,
    )
    data = sample_backtest_data(START, END)
    connection = await connect(resolve_server_urls(load_config()).database_url)
    try:
        await upgrade(connection)
        run_id = uuid4()
        await store.create_run(
            connection, run_id, config.kind, config.to_json(), "sharpe", planned_trials(config, data)
        )
        stamps: list[float] = []
        started = time.perf_counter()
        await run_optimization(
            connection,
            run_id,
            config,
            data,
            num_cpus=cpus,
            progress=lambda *_: stamps.append(time.perf_counter()),
        )
        wall = time.perf_counter() - started
        first_wave = min(cpus, trials)
        steady = (
            (trials - first_wave) / (stamps[-1] - stamps[first_wave - 1]) if trials > first_wave else None
        )
        bars = int(data.market.valid.sum())
        return {
            "cpus": cpus,
            "trials": trials,
            "bars_per_trial": bars,
            "wall_s": round(wall, 2),
            "steady_trials_per_s": None if steady is None else round(steady, 3),
            "steady_bars_per_s": None if steady is None else round(steady * bars),
        }
    finally:
        await connection.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(asyncio.run(one(int(sys.argv[2]), int(sys.argv[3])))))
        return
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    cpu_counts = [int(c) for c in sys.argv[2:]] or [1, 2]
    for cpus in cpu_counts:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(trials), str(cpus)],
            check=True,
            capture_output=True,
            text=True,
        )
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
