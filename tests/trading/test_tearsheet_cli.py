"""`stonks report --backtest ID` (issue 17) on a backtest stored as the Backtesting page stores
one: the file written stands alone and carries the run's figures; a bad or unknown id is one
line and exit 1."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest

from services.shared.db import connect
from services.trading.backtest.run_store import save_backtest
from tests.trading.api.test_tearsheet_api import END, START, card, sample_result
from tests.trading.cli_harness import run_cli


@pytest.mark.integration
async def test_report_of_a_stored_backtest(
    tmp_path: Path, database_url: str, cli_env: dict[str, str]
) -> None:
    result = sample_result()
    connection = await connect(database_url)
    try:
        backtest_id = await save_backtest(connection, result)
    finally:
        await connection.close()
    out = tmp_path / "sheet.html"
    done = run_cli("report", "--backtest", str(backtest_id), "--out", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and f"{result.metrics.trade_count} trades" in done.stdout
    page = out.read_text()
    assert card(page, "Final value") == f"${result.metrics.final_value:,.2f}"
    assert card(page, "Closed trades") == str(result.metrics.trade_count)
    assert f"Backtest {START} to {END}" in page and page.count("data:image/png;base64,") == 5
    unknown = run_cli("report", "--backtest", str(uuid4()), "--out", str(out), env=cli_env)
    assert unknown.returncode == 1 and "no backtest" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_bad_id_is_one_line_and_exit_1() -> None:
    done = run_cli("report", "--backtest", "nope")
    assert done.returncode == 1 and "not a backtest id" in done.stderr and "Traceback" not in done.stderr
