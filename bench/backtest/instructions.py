"""Instructions one backtest executes, counted by valgrind (callgrind), for comparing this tree
with an earlier checkout on a machine whose timings wander more than the difference.

`run.py`'s workload (the SMA 10/30 crossover, moderate tier, 2003-2012), run once in a fresh
process under valgrind, and once more without the backtest itself: the difference is the
backtest's own count (signal excluded). The hash seed is fixed (`PYTHONHASHSEED=0`): sets and
dicts of strings iterate in a seed's order, which moves the count slightly but not the trades.
Each count takes a few minutes (valgrind runs the interpreter some 50 times slower).

    git worktree add --detach /tmp/before d052ae1
    python bench/backtest/instructions.py --before /tmp/before 100

`--plan-rule` runs this tree with the plan's literal risk-tier rule (trades as the engine did
before issue 15's guarded rule), for comparing like with like against a tree from before it.
Needs valgrind (Debian: `apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]

WORKLOAD = """
import sys
from decimal import Decimal
import bench.backtest.run as bench
from services.shared.schemas import RiskTierName
from services.trading.backtest import BacktestConfig, BacktestData, Backtester
from services.trading.backtest.signals import momentum_recommendations
tickers, mode, plan_rule = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "plan"
extra = {}
if plan_rule:
    from services.trading.core.engine_settings import EngineSettings
    from services.trading.core.risk_tier_controller import RiskTierSettings, TierRule
    extra["settings"] = EngineSettings(enabled=True, tier_rules=RiskTierSettings(rule=TierRule.PLAN))
market, _ = bench.build_universe(tickers)
config = BacktestConfig(bench.START, bench.END, Decimal(100_000), RiskTierName.MODERATE, signals="momentum", **extra)
recs = momentum_recommendations(market)
if mode == "run":
    result = Backtester(BacktestData(market, recs)).run(config)
    print(f"trades {result.metrics.trade_count}", file=sys.stderr)
"""


def count(tree: Path, tickers: int, mode: str, *, plan_rule: bool) -> tuple[int, str]:
    """Instructions of the workload in `tree` (`mode` "run" or "setup"), and its trades line."""
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/callgrind.out",
                sys.executable,
                "-c",
                WORKLOAD,
                str(tickers),
                mode,
                "plan" if plan_rule else "default",
            ],
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
        )
    collected = re.search(r"Collected : (\d+)", out.stderr)
    if collected is None:
        raise RuntimeError(f"valgrind reported no count for {tree}:\n{out.stderr[-2000:]}")
    trades = re.search(r"^trades \d+$", out.stderr, re.MULTILINE)
    return int(collected.group(1)), trades.group(0) if trades else ""


def backtest_count(tree: Path, tickers: int, *, plan_rule: bool = False) -> tuple[int, str]:
    ran, trades = count(tree, tickers, "run", plan_rule=plan_rule)
    setup, _ = count(tree, tickers, "setup", plan_rule=plan_rule)
    return ran - setup, trades


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tickers", type=int, nargs="?", default=100, help="universe size (default 100)")
    parser.add_argument("--before", type=Path, help="a checkout of an earlier commit to count too")
    parser.add_argument("--plan-rule", action="store_true", help="this tree also with the plan's tier rule")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.before is not None and not (args.before / "bench/backtest/run.py").is_file():
        parser.error(f"{args.before} holds no bench/backtest/run.py")
    runs = [("this tree", HERE, False)]
    if args.plan_rule:
        runs.append(("this tree, plan tier rule", HERE, True))
    if args.before is not None:
        runs.insert(0, (f"before ({args.before})", args.before.resolve(), False))
    for label, tree, plan_rule in runs:
        instructions, trades = backtest_count(tree, args.tickers, plan_rule=plan_rule)
        print(f"{label}: {instructions / 1e9:.3f} billion instructions ({trades})", flush=True)


if __name__ == "__main__":
    main()
