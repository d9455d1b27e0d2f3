"""`stonks-trading optimize`: bad input is one line and exit 1; a small walk-forward run on the
sample market stores itself and prints its windows, stability and the out-of-sample record;
resuming a completed run says there is nothing to resume."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest

from tests.trading.cli_harness import run_cli
from tests.trading.sample_market import load_sample_market


def _optimize(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Longer than other commands get: a run starts Ray and runs its trials.
    return run_cli("optimize", *args, env=env, timeout=240)


DATES = ("--start", "2005-01-03", "--end", "2005-12-30")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((*DATES, "--param", "leverage=1:3"), "parameter leverage: unknown parameter"),
        (
            (*DATES, "--param", "reward_risk_ratio=0:30"),
            "parameter reward_risk_ratio: 0 is outside the allowed",
        ),
        ((*DATES, "--param", "reward_risk_ratio=1:3", "--objective", "alpha"), "unknown objective 'alpha'"),
        ((*DATES, "--param", "reward_risk_ratio=1:3", "--sampler", "grid"), "a grid search needs a step"),
        (
            (*DATES, "--param", "reward_risk_ratio=1:3", "--max-drawdown", "150%"),
            "max_drawdown must be a fraction",
        ),
        ((*DATES,), "nothing to search"),
        ((*DATES, "--param", "reward_risk_ratio=1:3", "--train", "100"), "go with --walk-forward"),
        (("--resume", "not-an-id"), "--resume 'not-an-id' is not an optimization id"),
        (
            ("--start", "2005-06-01", "--end", "2005-01-03", "--param", "reward_risk_ratio=1:3"),
            "end date 2005-01-03 is before start date 2005-06-01",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message) -> None:
    result = _optimize(*args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_explains_the_space_and_walk_forward() -> None:
    result = _optimize("--help")
    assert result.returncode == 0
    for words in (
        "--param",
        "--walk-forward",
        "--ray-address",
        "--resume",
        "Deflated Sharpe",
        "signal_fast_window",
    ):
        assert words in result.stdout


@pytest.mark.integration
async def test_a_walk_forward_run_from_the_command_line(db, cli_env: dict[str, str]) -> None:
    await load_sample_market(db, ("AAPL", "MSFT"), date(2004, 6, 1), date(2005, 12, 31))
    args = (
        *DATES,
        "--tier",
        "aggressive",
        "--param",
        "reward_risk_ratio=1:3:0.5",
        "--param",
        "signal_fast_window=5,10,15",
    )
    ok = _optimize(
        *args, "--trials", "3", "--walk-forward", "--train", "126", "--test", "63", "--cpus", "1", env=cli_env
    )
    assert ok.returncode == 0, ok.stderr
    for words in (
        "walk-forward windows",
        "stitched out-of-sample",
        "parameter stability",
        "reward_risk_ratio",
    ):
        assert words in ok.stdout
    run = await db.fetchrow("SELECT id, status, kind, trials_done FROM optimization_runs")
    assert (run["status"], run["kind"], run["trials_done"]) == ("completed", "walk_forward", 3 * 2)
    assert await db.fetchval("SELECT count(*) FROM optimization_windows") == 2
    assert f"optimization {run['id']} stored" in ok.stdout
    again = _optimize("--resume", str(run["id"]), env=cli_env)
    assert again.returncode == 1 and "is already completed: nothing to resume" in again.stderr
