"""Two trees' backtest times in the same minutes: `run.py`'s measure in a checkout of an earlier
commit and in this one, alternating, so a busy machine slows both alike.

    git worktree add --detach /tmp/before d052ae1
    python bench/backtest/compare.py /tmp/before 100 --rounds 3

This tree runs twice: with its default settings, and with the plan's literal risk-tier rule,
which trades as the engine did before the guarded rule (issue 15) and so compares like with
like. Each figure is process CPU seconds, best of run.py's repeats.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]

# run.py's measure with the plan's tier rule: BacktestConfig's default settings replaced.
PLAN_RULE = """
import json, sys
import bench.backtest.run as bench
from services.trading.backtest.config import BacktestConfig
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.risk_tier_controller import RiskTierSettings, TierRule
plain_init = BacktestConfig.__init__
def with_plan_rule(self, *args, **kwargs):
    kwargs.setdefault("settings", EngineSettings(enabled=True, tier_rules=RiskTierSettings(rule=TierRule.PLAN)))
    plain_init(self, *args, **kwargs)
BacktestConfig.__init__ = with_plan_rule
print(json.dumps(bench.measure(int(sys.argv[1]))))
"""


def measure(tree: Path, tickers: int, *, plan_rule: bool = False) -> tuple[float, int]:
    command = (
        ["-c", PLAN_RULE, str(tickers)] if plan_rule else ["bench/backtest/run.py", "--one", str(tickers)]
    )
    out = subprocess.run(
        [sys.executable, *command],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tree)},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["cpu_s"], result["trades"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="a checkout of the earlier commit")
    parser.add_argument("tickers", type=int, nargs="?", default=100, help="universe size (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    args = parser.parse_args()
    if not (args.before / "bench/backtest/run.py").is_file():
        parser.error(f"{args.before} holds no bench/backtest/run.py")
    for round_ in range(1, args.rounds + 1):
        before = measure(args.before.resolve(), args.tickers)
        now = measure(HERE, args.tickers)
        plan = measure(HERE, args.tickers, plan_rule=True)
        print(
            f"round {round_}: before {before[0]:.3f} s ({before[1]} trades)  now {now[0]:.3f} s ({now[1]} trades)"
            f"  now, plan tier rule {plan[0]:.3f} s ({plan[1]} trades)",
            flush=True,
        )


if __name__ == "__main__":
    main()
