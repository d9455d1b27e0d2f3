"""The read endpoints on a history the live stack made (seed task 20.1, dashboard tasks 23.1-23.5):
status, positions, decisions with each filter and page boundaries, trades, metrics and their
history."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.shared.config import BrokerName
from services.shared.schemas import TradingMode
from services.trading.core.clock import SimulatedClock
from services.trading.live.engine import TradingEngine
from tests.trading.api.conftest import make_runtime, serve
from tests.trading.engine_harness import ORDER_SIGNER, at

pytestmark = pytest.mark.integration


async def test_status_of_an_empty_account(api) -> None:
    body = (await api.client.get("/api/trading/status")).json()
    assert body["enabled"] is False and body["paused"] is False and body["risk_tier"] == "moderate"
    assert body["circuit_breaker"] == {
        "active": False,
        "trigger": None,
        "reason": None,
        "triggered_at": None,
        "until": None,
        "ticker_cooldowns": [],
    }
    assert body["total_value"] == "0" and body["open_positions"] == [] and body["last_decision_at"] is None
    assert body["engine"]["attached"] is False and body["engine"]["runs_here"] is False
    assert body["trading_mode"] == "paper" and body["broker"] == "paper"


async def test_status_names_the_trading_mode_and_the_broker(pool, redis_client) -> None:
    """Without an engine the settings say it; an attached engine's own mode wins, since its
    mode is the one its orders carry."""
    clock = SimulatedClock(at(date(2024, 3, 1), 10))
    alone = make_runtime(pool, redis_client, clock, trading_mode=TradingMode.LIVE, broker=BrokerName.ALPACA)
    async for client in serve(alone):
        body = (await client.get("/api/trading/status")).json()
        assert (body["trading_mode"], body["broker"], body["engine"]["mode"]) == ("live", "alpaca", None)
    engine = TradingEngine(pool, redis_client, clock, mode=TradingMode.LIVE, order_signer=ORDER_SIGNER)
    attached = make_runtime(pool, redis_client, clock, engine=engine, broker=BrokerName.ALPACA)
    async for client in serve(attached):
        body = (await client.get("/api/trading/status")).json()
        assert (body["trading_mode"], body["broker"], body["engine"]["mode"]) == ("live", "alpaca", "live")


async def test_status_shows_pools_heat_positions_with_stops_and_the_engine(traded) -> None:
    api, _ = traded
    body = (await api.client.get("/api/trading/status")).json()
    assert body["enabled"] is True and body["engine"] == {
        "attached": True,
        "runs_here": False,
        "started": True,
        "holds_lock": True,
        "loop_running": True,
        "mode": "paper",
        "error": None,
    }
    reserve = await api.pool.fetchval(
        "SELECT balance_after FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1"
    )
    assert Decimal(body["reserve_pool"]) == reserve > 0  # the take-profit's siphon
    assert Decimal(body["active_pool"]) == Decimal(body["total_value"]) - reserve
    [position] = body["open_positions"]
    levels = await api.pool.fetchrow("SELECT * FROM position_stop_levels WHERE active AND ticker = 'ABC'")
    assert position["ticker"] == "ABC" and Decimal(position["stop_loss_price"]) == levels["stop_loss_price"]
    assert Decimal(position["take_profit_price"]) == levels["take_profit_price"]
    heat = Decimal(position["risk_dollars"]) / Decimal(body["total_value"])
    assert Decimal(body["portfolio_heat"]) == heat  # docs/contracts.md section 6, one position
    assert body["last_decision_at"] is not None


_DECISION = """INSERT INTO trading_decisions (id, recommendation_id, decision, side, skip_reason, ticker,
        risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision, reserve_pool_at_decision,
        circuit_breaker_status, is_micro_trade, decision_trace, created_at)
    VALUES (gen_random_uuid(), $1, $2, 'buy', $3, 'XYZ', 'moderate', 0, 0, 0, 'inactive', $4, '{}', $5)"""


async def test_status_counts_todays_micro_entries_as_the_daily_limit_does(api) -> None:
    """Only micro entries (acts on a recommendation) of the engine's New York day count: not
    yesterday's, not a skip, not a standard entry, not a micro exit."""
    now = api.clock.now()

    async def decision(micro: bool, act: bool = True, entry: bool = True, at_=now) -> None:
        rec = (
            await api.pool.fetchval(
                """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
               VALUES ('XYZ', 'buy', 0.8, 'paper_eligible', '1d', 'test', $1) RETURNING id""",
                at_,
            )
            if entry
            else None
        )
        await api.pool.execute(
            _DECISION, rec, "act" if act else "skip", None if act else "refused", micro, at_
        )

    await decision(micro=True)
    await decision(micro=True)
    await decision(micro=True, at_=now - timedelta(days=1))
    await decision(micro=True, act=False)
    await decision(micro=False)
    await decision(micro=True, entry=False)
    assert (await api.client.get("/api/trading/status")).json()["micro_entries_today"] == 2


async def test_status_shows_a_tripped_breaker_with_its_reason_and_end(api) -> None:
    now = api.clock.now()
    await api.pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, reason, cooldown_expires,
               created_at) VALUES ('volatility', 3, 3, '3 stop-outs in 30 minutes', $1, $2)""",
        now + timedelta(minutes=60),
        now - timedelta(minutes=1),
    )
    await api.pool.execute(
        """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker, reason,
               cooldown_expires, created_at) VALUES ('single_position', 0.08, 0.09, 'XYZ', 'lost 9%', $1, $2)""",
        now + timedelta(hours=23),
        now - timedelta(hours=1),
    )
    breaker = (await api.client.get("/api/trading/status")).json()["circuit_breaker"]
    assert breaker["active"] is True and breaker["trigger"] == "volatility"
    assert breaker["reason"] == "3 stop-outs in 30 minutes"
    assert breaker["until"] is not None and [c["ticker"] for c in breaker["ticker_cooldowns"]] == ["XYZ"]
    api.clock.set(now + timedelta(minutes=61))  # the halt has run out; the cooldown has not
    breaker = (await api.client.get("/api/trading/status")).json()["circuit_breaker"]
    assert breaker["active"] is False and breaker["ticker_cooldowns"][0]["ticker"] == "XYZ"


async def test_positions_with_stops_and_sector_exposure(traded) -> None:
    api, _ = traded
    body = (await api.client.get("/api/trading/positions")).json()
    [position] = body["items"]
    assert position["ticker"] == "ABC" and position["sector"] == "Energy"
    assert Decimal(position["market_value"]) == Decimal(position["quantity"]) * Decimal(
        position["current_price"]
    )
    assert body["sector_exposure"] == {"Energy": position["market_value"]}


async def test_decisions_newest_first_with_each_filter(traded) -> None:
    api, history = traded
    all_ = (await api.client.get("/api/trading/decisions")).json()
    assert all_["total"] == 4  # XYZ buy, ABC buy, NOPE skip, XYZ take-profit exit
    stamps = [d["created_at"] for d in all_["items"]]
    assert stamps == sorted(stamps, reverse=True)
    skips = (await api.client.get("/api/trading/decisions", params={"decision": "skip"})).json()
    assert skips["total"] == 1 and skips["items"][0]["ticker"] == "NOPE"
    assert skips["items"][0]["category"] == "ticker" and "unknown" in skips["items"][0]["skip_reason"]
    acts = (await api.client.get("/api/trading/decisions", params={"decision": "act"})).json()
    assert acts["total"] == 3 and {d["category"] for d in acts["items"]} == {"entry", "take_profit"}
    xyz = (await api.client.get("/api/trading/decisions", params={"ticker": "xyz"})).json()
    assert xyz["total"] == 2 and {d["ticker"] for d in xyz["items"]} == {"XYZ"}
    exit_day = at(history.exit_day, 0).isoformat()
    later = (await api.client.get("/api/trading/decisions", params={"since": exit_day})).json()
    assert later["total"] == 1 and later["items"][0]["category"] == "take_profit"
    earlier = (await api.client.get("/api/trading/decisions", params={"until": exit_day})).json()
    assert earlier["total"] == 3
    both = (
        await api.client.get(
            "/api/trading/decisions", params={"until": exit_day, "decision": "act", "ticker": "ABC"}
        )
    ).json()
    assert both["total"] == 1 and both["items"][0]["decision_trace"]["checks"]


async def test_decision_pages_cover_every_row_once(traded) -> None:
    api, _ = traded
    seen = []
    for offset in range(0, 5, 2):
        page = (await api.client.get("/api/trading/decisions", params={"limit": 2, "offset": offset})).json()
        assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == offset
        seen += [d["id"] for d in page["items"]]
    assert len(seen) == len(set(seen)) == 4
    past_end = (await api.client.get("/api/trading/decisions", params={"offset": 4})).json()
    assert past_end == {"items": [], "total": 4, "limit": 50, "offset": 4}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"decision": "maybe"}, "decision"),
        ({"ticker": "no spaces"}, "ticker"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-02-02T00:00:00Z", "until": "2024-02-01T00:00:00Z"}, "until"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(api, params, field) -> None:
    response = await api.client.get("/api/trading/decisions", params=params)
    assert response.status_code == 422
    assert any(e["loc"] == ["query", field] for e in response.json()["detail"]), response.json()


async def test_trades_with_pnl_and_the_recommendation_thesis(traded) -> None:
    api, history = traded
    body = (await api.client.get("/api/trading/trades")).json()
    [trade] = body["items"]
    row = await api.pool.fetchrow("SELECT * FROM closed_trades")
    assert trade["ticker"] == "XYZ" and trade["exit_reason"] == "take_profit" and trade["thesis"] == "test"
    assert Decimal(trade["pnl"]) == row["pnl"] > 0
    assert trade["hold_duration_seconds"] == (row["exit_at"] - row["entry_at"]).total_seconds()
    assert (await api.client.get("/api/trading/trades", params={"ticker": "ABC"})).json()["total"] == 0
    since = at(history.exit_day, 16).isoformat()
    assert (await api.client.get("/api/trading/trades", params={"since": since})).json()["total"] == 0
    assert (await api.client.get("/api/trading/trades", params={"until": since})).json()["total"] == 1


async def test_tax_lots_with_basis_fees_amount_realized_and_term(traded) -> None:
    """Issue 15: each closed piece shows its basis with fees, what it realized net of the sale's
    fees, and whether the gain is short or long term."""
    api, _ = traded
    await api.pool.execute("UPDATE tax_lots SET fees = 0.75, sale_fees = 0.25 WHERE status = 'closed'")
    body = (await api.client.get("/api/trading/tax-lots", params={"status": "closed"})).json()
    assert body["total"] >= 1
    for lot in body["items"]:
        row = await api.pool.fetchrow("SELECT * FROM tax_lots WHERE id = $1", lot["id"])
        basis = row["cost_basis_per_share"] * row["quantity"] + Decimal("0.75")
        proceeds = row["exit_price"] * row["quantity"] - Decimal("0.25")
        assert (Decimal(lot["cost_basis"]), Decimal(lot["proceeds"])) == (basis, proceeds)
        assert Decimal(lot["realized_pnl"]) == row["realized_pnl"]
        assert lot["holding_term"] == "short" and lot["status"] == "closed" and lot["wash_sale"] is None
    open_lots = (await api.client.get("/api/trading/tax-lots", params={"status": "open"})).json()["items"]
    assert open_lots and all(lot["holding_term"] is None and lot["proceeds"] is None for lot in open_lots)
    everything = (await api.client.get("/api/trading/tax-lots")).json()["total"]
    assert everything == await api.pool.fetchval("SELECT count(*) FROM tax_lots")
    assert (await api.client.get("/api/trading/tax-lots", params={"ticker": "NONE"})).json()["total"] == 0
    response = await api.client.get("/api/trading/tax-lots", params={"status": "sold"})
    assert response.status_code == 422
    assert any(e["loc"] == ["query", "status"] for e in response.json()["detail"])


async def test_metrics_now_with_an_infinite_profit_factor_said_so(traded) -> None:
    api, _ = traded
    body = (await api.client.get("/api/trading/metrics")).json()
    assert body["trade_count"] == 1 and body["win_count"] == 1 and body["win_rate"] == 1.0
    assert body["profit_factor"] is None and body["profit_factor_infinite"] is True  # no losses
    assert body["micro"]["profit_factor"] == 0.0 and body["micro"]["profit_factor_infinite"] is False
    status = (await api.client.get("/api/trading/status")).json()
    assert body["total_portfolio_value"] == status["total_value"]
    assert body["reserve_pool"] == status["reserve_pool"] and body["history_days"] >= 1


async def test_metrics_history_in_date_order_with_range_and_pages(api) -> None:
    for day, value in ((1, 10000), (2, 10100), (5, 9900)):
        await api.pool.execute(
            """INSERT INTO portfolio_snapshots (snapshot_date, portfolio_value, active_pool, reserve_pool, risk_tier,
                   metrics) VALUES ($1, $2, $2, 0, 'moderate', $3)""",
            at(api.clock.now().date().replace(day=day), 16).date(),
            Decimal(value),
            {"profit_factor": "Infinity", "trade_count": 2, "daily_pnl": "12.5"},
        )
    body = (await api.client.get("/api/trading/metrics/history")).json()
    assert [s["portfolio_value"] for s in body["items"]] == ["10000", "10100", "9900"]
    assert body["items"][0]["profit_factor_infinite"] is True and body["items"][0]["daily_pnl"] == "12.5"
    ranged = (
        await api.client.get(
            "/api/trading/metrics/history", params={"since": "2024-03-02", "until": "2024-03-05"}
        )
    ).json()
    assert ranged["total"] == 2 and ranged["items"][0]["snapshot_date"] == "2024-03-02"
    page = (await api.client.get("/api/trading/metrics/history", params={"limit": 1, "offset": 2})).json()
    assert page["total"] == 3 and [s["snapshot_date"] for s in page["items"]] == ["2024-03-05"]
