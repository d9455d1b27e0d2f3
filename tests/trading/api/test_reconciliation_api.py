"""Reconciliation through the API (issue 14): the runs and open findings are shown, an
unexplained finding's pause is visible on /status, and the owner's acknowledgement (token
required, audited, idempotent) ends it once no unexplained finding is left."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.trading.core.reconciliation import Correction, Discrepancy, Kind, Resolution
from services.trading.live.reconciliation_store import ReconciliationStore, RunRecord
from tests.trading.api.conftest import AUTH

pytestmark = pytest.mark.integration
URL = "/api/trading/reconciliation"


def _found() -> tuple[Discrepancy, ...]:
    return (
        Discrepancy(
            Kind.POSITION,
            "XYZ",
            Decimal(10),
            Decimal(0),
            Resolution.UNEXPLAINED,
            "unexplained: 10 shares are gone at the broker",
            correction=Correction("sell", Decimal(10), Decimal("48.00"), "the broker's sale"),
        ),
        Discrepancy(
            Kind.CASH, None, Decimal(100), Decimal(580), Resolution.ADOPTED, "adopted: the broker's cash"
        ),
        Discrepancy(
            Kind.POSITION,
            "ABC",
            Decimal(5),
            Decimal(7),
            Resolution.IN_FLIGHT,
            "explained: an order in flight",
        ),
    )


async def test_findings_are_shown_and_acknowledging_the_unexplained_one_ends_the_pause(api) -> None:
    now = api.clock.now()
    await api.pool.execute(
        "INSERT INTO broker_account (id, cash) VALUES (1, 580) ON CONFLICT (id) DO NOTHING"
    )
    run_id, recorded = await ReconciliationStore(api.pool).record_run(
        RunRecord("start", now, now, "differences", engine_cash=Decimal(100), broker_cash=Decimal(580)),
        _found(),
        "paper",
    )
    assert len(recorded) == 3

    shown = (await api.client.get(URL, headers=AUTH)).json()
    assert shown["paused"] is True
    assert [r["id"] for r in shown["runs"]] == [run_id] and shown["runs"][0]["found"] == 3
    assert [(d["kind"], d["resolution"], d["pauses"]) for d in shown["open"]] == [
        ("position", "unexplained", True),
        ("cash", "adopted", False),
    ], "in-flight findings are recorded, not kept open"
    assert shown["open"][0]["correction_order_id"] == f"recon-{run_id}-XYZ"
    assert shown["account"]["cash"] == "580"
    breaker = (await api.client.get("/api/trading/status", headers=AUTH)).json()["circuit_breaker"]
    assert (breaker["active"], breaker["trigger"]) == (True, "reconciliation")

    position_id, cash_id = (d["id"] for d in shown["open"])
    assert (await api.client.post(f"{URL}/{position_id}/acknowledge")).status_code == 401
    assert (await api.client.post(f"{URL}/999999/acknowledge", headers=AUTH)).status_code == 404
    assert (await api.client.post(f"{URL}/0/acknowledge", headers=AUTH)).status_code == 422

    api.clock.advance(timedelta(minutes=3))
    answer = await api.client.post(f"{URL}/{position_id}/acknowledge", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["changed"], body["paused"]) == (True, False)
    assert "api: POST /api/trading/reconciliation" in body["discrepancy"]["acknowledged_by"]
    audit = await api.pool.fetchval("SELECT change_source FROM trading_config_audit ORDER BY id DESC LIMIT 1")
    assert audit.startswith(f"api: POST /api/trading/reconciliation/{position_id}/acknowledge")
    breaker = (await api.client.get("/api/trading/status", headers=AUTH)).json()["circuit_breaker"]
    assert breaker["active"] is False
    again = (await api.client.post(f"{URL}/{position_id}/acknowledge", headers=AUTH)).json()
    assert again["changed"] is False

    await api.client.post(f"{URL}/{cash_id}/acknowledge", headers=AUTH)
    assert (await api.client.get(URL, headers=AUTH)).json()["open"] == []


async def test_with_nothing_reconciled_the_answer_is_empty(api) -> None:
    shown = (await api.client.get(URL, headers=AUTH)).json()
    assert (shown["paused"], shown["runs"], shown["open"]) == (False, [], [])
