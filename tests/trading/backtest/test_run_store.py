"""Persisting backtests on a real PostgreSQL: a completed run reads back with its status,
metrics and trades; a run that fails mid-way is stored `failed` with its error and the partial
result; the background job loads its history from the database and reports progress."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.shared.db import create_pool
from services.shared.schemas import RiskTierName
from services.trading.backtest import BacktestConfig, Backtester, sample_backtest_data
from services.trading.backtest import simulation as simulation_module
from services.trading.backtest.run_store import (
    create_backtest_run,
    fetch_backtest,
    run_backtest_job,
    save_backtest,
)
from tests.trading.sample_market import load_sample_market

pytestmark = pytest.mark.integration

START, END = date(2005, 1, 3), date(2006, 12, 29)
TICKERS = ("AAPL", "MSFT")


def _config(**changes) -> BacktestConfig:
    values = {
        "start_date": START,
        "end_date": END,
        "initial_capital": Decimal(20_000),
        "risk_tier": RiskTierName.AGGRESSIVE,
        "tickers": TICKERS,
        "signals": "momentum",
    }
    return BacktestConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def sample_run():
    config = _config()
    return Backtester(sample_backtest_data(START, END, TICKERS)).run(config)


async def test_a_completed_run_reads_back_with_its_metrics_and_trades(db, sample_run) -> None:
    result = sample_run
    assert result.completed and result.trades
    backtest_id = await save_backtest(db, result)
    stored = await fetch_backtest(db, backtest_id)
    assert stored["status"] == "completed" and stored["progress"] == 1.0 and stored["error_message"] is None
    assert stored["final_value"] == result.metrics.final_value
    assert stored["trade_count"] == result.metrics.trade_count == len(result.trades)
    for column in ("total_return", "sharpe_ratio", "max_drawdown", "win_rate", "profit_factor"):
        assert stored[column] == pytest.approx(getattr(result.metrics, column))
    closed = [t for t in stored["trades"] if t["exit_price"] is not None]
    assert [(t["ticker"], t["quantity"], t["pnl"], t["exit_reason"]) for t in closed] == [
        (t.ticker, t.quantity, t.pnl, t.exit_reason) for t in result.trades
    ]
    assert len(stored["trades"]) == len(result.trades) + len(result.open_positions)
    assert len(stored["equity_curve"]) == result.sessions
    assert stored["config"]["risk_tier"] == "aggressive" and stored["config"]["tickers"] == list(TICKERS)
    assert stored["details"]["decisions"]["total"] == len(result.decisions)


async def test_a_failure_mid_run_is_stored_failed_with_the_partial_result(db) -> None:
    config = _config()

    def fail_half_way(fraction: float) -> None:
        if fraction >= 0.5:
            raise RuntimeError("the disk is full")

    result = Backtester(sample_backtest_data(START, END, TICKERS)).run(config, progress=fail_half_way)
    assert result.status == "failed" and "the disk is full" in result.error
    assert 0 < len(result.equity_curve) < result.sessions
    backtest_id = await save_backtest(db, result)
    stored = await fetch_backtest(db, backtest_id)
    assert stored["status"] == "failed" and "RuntimeError: the disk is full" in stored["error_message"]
    assert 0 < stored["progress"] < 1
    assert len(stored["equity_curve"]) == len(result.equity_curve)
    assert stored["trade_count"] == len(result.trades)


async def test_the_job_runs_from_the_database_and_completes(db, database_url) -> None:
    await load_sample_market(db, TICKERS, date(2004, 6, 1), END, earnings=True)
    pool = await create_pool(database_url, max_size=3)
    try:
        config = _config()
        backtest_id = await create_backtest_run(pool, config)
        assert (await fetch_backtest(pool, backtest_id))["status"] == "running"
        await run_backtest_job(pool, config, backtest_id)
        stored = await fetch_backtest(pool, backtest_id)
    finally:
        await pool.close()
    expected = Backtester(sample_backtest_data(START, END, TICKERS)).run(config)
    assert stored["status"] == "completed", stored["error_message"]
    # The database holds the same bars as the sample, so the job's run is the sample's run.
    assert stored["final_value"] == expected.metrics.final_value
    assert stored["trade_count"] == expected.metrics.trade_count


async def test_the_job_stores_a_rule_failure_mid_run_as_failed(db, database_url, monkeypatch) -> None:
    await load_sample_market(db, TICKERS, date(2004, 6, 1), END, earnings=True)
    real_evaluate = simulation_module.rebalancer.evaluate
    calls = []

    def evaluate_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) > 20:
            raise ValueError("rebalancer broke")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(simulation_module.rebalancer, "evaluate", evaluate_then_fail)
    pool = await create_pool(database_url, max_size=3)
    try:
        backtest_id = await create_backtest_run(pool, _config())
        await run_backtest_job(pool, _config(), backtest_id)
        stored = await fetch_backtest(pool, backtest_id)
    finally:
        await pool.close()
    assert stored["status"] == "failed" and "ValueError: rebalancer broke" in stored["error_message"]
    assert 20 <= len(stored["equity_curve"]) < 400  # about 20 weeks in, of two years


async def test_the_job_reports_an_unknown_ticker_as_failed(db, database_url) -> None:
    await load_sample_market(db, TICKERS, date(2004, 6, 1), END, earnings=True)
    pool = await create_pool(database_url, max_size=2)
    try:
        config = _config(tickers=("AAPL", "NOPE"))
        backtest_id = await create_backtest_run(pool, config)
        await run_backtest_job(pool, config, backtest_id)
        stored = await fetch_backtest(pool, backtest_id)
    finally:
        await pool.close()
    assert stored["status"] == "failed" and "unknown ticker(s) NOPE" in stored["error_message"]
