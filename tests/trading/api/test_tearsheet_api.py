"""GET /api/trading/tearsheet (issue 17), on the real app and database: the live account's
tearsheet says what GET /metrics says about the same rows; a stored backtest's, what its
stored result says; a bad id is a 422 naming the field, an unknown one a 404."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from uuid import uuid4

import pytest

from services.shared.schemas import RiskTierName
from services.trading.backtest import BacktestConfig, Backtester, sample_backtest_data
from services.trading.backtest.run_store import create_backtest_run, save_backtest
from tests.trading.api.conftest import AUTH, make_runtime, serve

pytestmark = pytest.mark.integration

START, END = date(2005, 1, 3), date(2005, 9, 30)
TICKERS = ("AAPL", "MSFT")


@cache
def sample_result():
    """A short completed run on the sample bars, as the Backtesting page would store it."""
    config = BacktestConfig(
        start_date=START,
        end_date=END,
        initial_capital=Decimal(20_000),
        risk_tier=RiskTierName.AGGRESSIVE,
        tickers=TICKERS,
        signals="momentum",
    )
    result = Backtester(sample_backtest_data(START, END, TICKERS)).run(config)
    assert result.completed and result.trades
    return result


def card(page: str, label: str) -> str:
    """The headline figure under `label` on the page."""
    found = re.search(rf"<div>{re.escape(label)}<b>([^<]*)</b></div>", page)
    assert found, label
    return found.group(1)


async def test_the_live_tearsheet_says_what_the_metrics_say(traded) -> None:
    api, history = traded
    # Older closes in front of the engine's own: a peak and a trough deeper than anything since,
    # so the drawdown is the curve's on both sides (the metrics count today's value too).
    first = await api.pool.fetchval("SELECT min(snapshot_date) FROM portfolio_snapshots")
    assert first is not None, "the traded history wrote no end-of-day snapshot"
    for back, value in ((4, 10_050), (3, 12_400), (2, 8_100), (1, 9_700)):
        await api.pool.execute(
            """INSERT INTO portfolio_snapshots (snapshot_date, portfolio_value, active_pool, reserve_pool,
                   risk_tier, metrics) VALUES ($1, $2, $2, 0, 'moderate', '{}')""",
            first - timedelta(days=back),
            Decimal(value),
        )
    metrics = (await api.client.get("/api/trading/metrics")).json()
    response = await api.client.get("/api/trading/tearsheet")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'filename="tearsheet-live.html"' in response.headers["content-disposition"]
    page = response.text
    assert card(page, "Sharpe") == f"{metrics['sharpe_ratio']:.2f}"
    assert card(page, "Max drawdown") == f"{metrics['max_drawdown']:.2%}"
    assert card(page, "Win rate") == f"{metrics['win_rate']:.1%}"
    assert card(page, "Closed trades") == str(metrics["trade_count"]) == "1"
    assert card(page, "Profit factor") == "infinite" and metrics["profit_factor_infinite"]
    assert card(page, "Sessions") == str(metrics["history_days"])
    assert page.count("data:image/png;base64,") == 6  # pyfolio's five and the Reserve Pool


async def test_a_stored_backtest_and_its_refusals(api) -> None:
    result = sample_result()
    backtest_id = await save_backtest(api.pool, result)
    response = await api.client.get("/api/trading/tearsheet", params={"backtest_id": str(backtest_id)})
    assert response.status_code == 200, response.text
    assert f'filename="tearsheet-{backtest_id}.html"' in response.headers["content-disposition"]
    shown = (await api.client.get(f"/api/trading/backtest/{backtest_id}")).json()
    page = response.text
    assert card(page, "Final value") == f"${Decimal(shown['final_value']):,.2f}"
    assert card(page, "Total return") == f"{shown['total_return']:+.2%}"
    assert card(page, "Closed trades") == str(shown["trade_count"])
    assert f"Backtest {START} to {END}" in page

    bad = await api.client.get("/api/trading/tearsheet", params={"backtest_id": "not-a-uuid"})
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["detail"]] == [["query", "backtest_id"]]
    unknown = await api.client.get("/api/trading/tearsheet", params={"backtest_id": str(uuid4())})
    assert unknown.status_code == 404 and "no backtest" in unknown.json()["detail"]
    running = await create_backtest_run(api.pool, result.config)
    busy = await api.client.get("/api/trading/tearsheet", params={"backtest_id": str(running)})
    assert busy.status_code == 409 and "running" in busy.json()["detail"]


async def test_no_snapshot_yet_is_409_and_the_token_is_asked_as_for_other_reads(
    api, pool, redis_client
) -> None:
    response = await api.client.get("/api/trading/tearsheet")
    assert response.status_code == 409 and "no end-of-day snapshots" in response.json()["detail"]
    from services.trading.api.settings import ReadAccess

    guarded = make_runtime(pool, redis_client, api.clock, read_access=ReadAccess.ALWAYS)
    async for client in serve(guarded):
        assert (await client.get("/api/trading/tearsheet")).status_code == 401
        assert (await client.get("/api/trading/tearsheet", headers=AUTH)).status_code == 409
