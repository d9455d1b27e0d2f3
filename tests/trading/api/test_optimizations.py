"""The optimizations API on the real app, database and Ray: bad requests are 422 naming the
field and start nothing; a search started through the API runs in the background on the sample
market and reports its progress, trials, best, DSR, PBO, importance and equity; a second one
while it runs is 429."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal

import pytest

from tests.trading.api.conftest import AUTH
from tests.trading.sample_market import load_sample_market

pytestmark = pytest.mark.integration

BODY = {
    "start_date": "2005-01-03",
    "end_date": "2005-12-30",
    "initial_capital": "10000",
    "risk_tier": "aggressive",
    "tickers": ["AAPL", "MSFT"],
    "space": {"reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5}, "signal_fast_window": [5, 10, 15]},
    "trials": 6,
    "seed": 4,
}


@pytest.mark.parametrize(
    ("changes", "loc", "message"),
    [
        ({"space": {"leverage": {"low": 1, "high": 2}}}, ["body", "space", "leverage"], "unknown parameter"),
        (
            {"space": {"reward_risk_ratio": {"low": 0, "high": 30}}},
            ["body", "space", "reward_risk_ratio"],
            "outside the allowed (0, 20]",
        ),
        ({"space": {}}, ["body", "space"], "at least 1"),
        ({"objective": "alpha"}, ["body", "objective"], "Input should be"),
        ({"trials": 0}, ["body", "trials"], "greater than or equal to 1"),
        ({"end_date": "2004-01-02"}, ["body", "end_date"], "before start date"),
        ({"max_drawdown": 1.5}, ["body", "max_drawdown"], "less than or equal to 1"),
        ({"commission_pct": 2}, ["body", "commission_pct"], "less than or equal to 1"),
        (
            {"sampler": "grid", "space": {"stop_loss_atr_multiplier": {"low": 1, "high": 3}}},
            ["body", "space", "stop_loss_atr_multiplier"],
            "a grid search needs a step",
        ),
        (
            {"walk_forward": {"train": 252, "test": 63}},
            ["body", "walk_forward", "train"],
            "no walk-forward window fits",
        ),
        ({"signals": "database"}, ["body", "space", "signal_fast_window"], "momentum signal"),
    ],
)
async def test_a_bad_request_is_422_naming_the_field_and_starts_nothing(api, changes, loc, message) -> None:
    response = await api.client.post("/api/trading/optimizations", headers=AUTH, json={**BODY, **changes})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in detail), detail
    assert await api.pool.fetchval("SELECT count(*) FROM optimization_runs") == 0
    assert api.runtime.optimizations.running == 0


def _beyond(item: dict, side: str) -> float:
    """A value just outside the listed bounds on `side`."""
    unit = 1 if item["kind"] == "int" else 0.01
    if side == "low":
        return item["low"] if item["low_open"] else item["low"] - unit
    return item["high"] + unit


async def _refusals(api, space: dict) -> list[dict]:
    """The 422's reasons for a request with this space and an end before its start (so a space
    the API takes is refused at end_date, and nothing ever runs)."""
    body = {**BODY, "end_date": "2004-01-02", "space": space}
    answer = await api.client.post("/api/trading/optimizations", headers=AUTH, json=body)
    assert answer.status_code == 422, answer.text
    return answer.json()["detail"]


async def test_the_listed_parameters_and_bounds_are_the_ones_a_space_is_held_to(api) -> None:
    """Each listed parameter is accepted at its high bound and refused just beyond either bound,
    with the 422 at space.<name> quoting the listed bounds."""
    response = await api.client.get("/api/trading/optimizations/parameters")
    assert response.status_code == 200, response.text
    items = {i["name"]: i for i in response.json()["items"]}
    assert {"reward_risk_ratio", "max_open_positions", "signal_fast_window"} <= set(items)
    slow = items["signal_slow_window"]
    for name, item in items.items():
        # The fast window's longest is accepted only beside a slow one that can be longer.
        partner = (
            {"signal_slow_window": {"low": slow["low"], "high": slow["high"]}}
            if name == "signal_fast_window"
            else {}
        )
        accepted = await _refusals(api, {name: [item["high"]], **partner})
        assert [d["loc"] for d in accepted] == [["body", "end_date"]], (name, accepted)
        for side in ("low", "high"):
            value = _beyond(item, side)
            refused = await _refusals(api, {name: [value], **partner})
            assert any(d["loc"][:3] == ["body", "space", name] for d in refused), (name, side, refused)
            if value <= 1e12:  # beyond it, the request's own cap on any number speaks first
                assert any(item["bounds"] in d["msg"] for d in refused), (name, side, refused)
    assert await api.pool.fetchval("SELECT count(*) FROM optimization_runs") == 0


async def test_unknown_optimization_is_404(api) -> None:
    response = await api.client.get("/api/trading/optimizations/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert (await api.client.post("/api/trading/optimizations", json=BODY)).status_code == 401


async def _wait_finished(client, url: str, timeout: float = 120) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await client.get(url)).json()
        if body["status"] != "running" or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.2)


async def test_a_search_through_the_api(api, local_ray) -> None:
    async with api.pool.acquire() as connection:
        await load_sample_market(connection, ("AAPL", "MSFT"), date(2004, 6, 1), date(2005, 12, 31))
    # Every trial is a backtest with the costs and fills the request names, as a backtest's are.
    costs = {"commission_per_share": "0.005", "tranche_spacing_sessions": 2, "rebalance_weekly": False}
    response = await api.client.post("/api/trading/optimizations", headers=AUTH, json={**BODY, **costs})
    assert response.status_code == 202, response.text
    accepted = response.json()
    stored = await api.pool.fetchval(
        "SELECT config->'backtest' FROM optimization_runs WHERE id = $1", accepted["optimization_id"]
    )
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert Decimal(stored["commission_per_share"]) == Decimal("0.005"), stored
    assert stored["tranche_spacing_sessions"] == 2 and stored["rebalance_weekly"] is False, stored
    assert accepted["status"] == "running"
    busy = await api.client.post("/api/trading/optimizations", headers=AUTH, json=BODY)
    assert busy.status_code == 429 and "at most 1" in busy.json()["detail"]

    body = await _wait_finished(api.client, accepted["result_url"])
    assert body["status"] == "completed", body["error"]
    assert body["progress"] == 1.0 and body["trials_done"] == body["trials_planned"] == 6
    assert [t["number"] for t in body["trials"]] == list(range(6))
    assert all(t["node_id"] and t["sessions"] == 252 for t in body["trials"])
    best = max((t for t in body["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
    assert body["best_trial"] == best["number"] and body["best_value"] == best["value"]
    assert set(body["best_params"]) == {"reward_risk_ratio", "signal_fast_window"}
    assert 0 <= body["dsr"]["dsr"] <= 1 and body["dsr"]["trials"] == 6
    assert 0 <= body["pbo"]["pbo"] <= 1 and sum(body["pbo"]["logit_histogram"]["counts"]) <= 12_870
    assert body["importance"] is None or set(body["importance"]) <= set(BODY["space"])
    assert len(body["best_equity"]) == 252 and body["windows"] == [] and body["oos_equity"] == []
    listed = (await api.client.get("/api/trading/optimizations", params={"status": "completed"})).json()
    assert [r["id"] for r in listed["items"]] == [accepted["optimization_id"]] and listed["total"] == 1
    assert "trials" not in listed["items"][0]
