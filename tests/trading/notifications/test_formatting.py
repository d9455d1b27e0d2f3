"""Every event type fits one SMS whatever its figures, and its email carries the figures."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import NotificationChannel, NotificationEventType
from services.trading.notifications import events
from services.trading.notifications.events import NotificationEvent
from services.trading.notifications.formatting import (
    SMS_MAX_CHARS,
    fit_sms,
    json_safe,
    money,
    percent,
    render,
)

AT = datetime(2026, 3, 6, 21, 30, tzinfo=UTC)
# GSM-7 basic characters within ASCII: what one SMS segment holds at one character each.
GSM_BASIC_ASCII = set(
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)

numbers = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.none(),
)
money_st = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2)
free_text = st.text(max_size=300)
instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def any_event() -> st.SearchStrategy[NotificationEvent]:
    """Each event type with figures of any size or kind, text of any script."""
    keys = {
        NotificationEventType.CIRCUIT_BREAKER_TRIGGERED: ["threshold_value", "actual_value"],
        NotificationEventType.CIRCUIT_BREAKER_RESUMED: [],
        NotificationEventType.RISK_TIER_CHANGED: ["win_rate", "drawdown", "reserve_pct"],
        NotificationEventType.EMERGENCY_LIQUIDATION: [
            "drawdown",
            "threshold",
            "reserve_released",
            "positions_closed",
            "total_value",
        ],
        NotificationEventType.LARGE_TRADE_PNL: [
            "quantity",
            "entry_price",
            "exit_price",
            "realized_pnl",
            "pnl_pct",
        ],
        NotificationEventType.DAILY_SUMMARY: [
            "total_value",
            "day_pnl",
            "day_pnl_pct",
            "realized_pnl",
            "trades_closed",
            "wins",
            "losses",
            "open_positions",
            "active_pool",
            "reserve",
        ],
        NotificationEventType.WEEKLY_DIGEST: [
            "total_value",
            "week_pnl",
            "week_pnl_pct",
            "realized_pnl",
            "trades_closed",
            "win_rate",
            "sharpe",
            "max_drawdown",
            "reserve",
        ],
        NotificationEventType.ORDER_REJECTED: ["quantity", "tranches_cancelled"],
        NotificationEventType.RECONCILIATION_DISCREPANCY: [
            "engine_figure",
            "broker_figure",
            "discrepancy_id",
        ],
    }
    texts = [
        "reason",
        "trigger_type",
        "ticker",
        "previous_tier",
        "new_tier",
        "risk_tier",
        "exit_reason",
        "session",
        "week_start",
        "week_end",
        "side",
        "order_reason",
        "reject_reason",
        "client_order_id",
        "kind",
        "resolution",
        "rule",
    ]

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(list(NotificationEventType)))
        data = {k: draw(numbers) for k in keys[kind]}
        data |= {k: draw(st.one_of(free_text, st.none())) for k in texts}
        data["cooldown_expires"] = draw(st.one_of(st.none(), instants))
        return NotificationEvent(kind, draw(instants), data)

    return build()


@settings(max_examples=400, deadline=None)
@given(any_event())
def test_every_sms_is_one_gsm_segment_under_160_characters(event: NotificationEvent) -> None:
    message = render(event)
    assert len(message.sms) < 160
    assert set(message.sms) <= GSM_BASIC_ASCII
    assert message.sms.startswith("STONKS")
    assert "\n" not in message.subject and "\r" not in message.subject and len(message.subject) < 160


@settings(max_examples=100, deadline=None)
@given(money_st, money_st, st.integers(0, 10_000), st.text(max_size=500))
def test_sms_keeps_the_figures_when_the_reason_is_long(pnl, value, closed, reason) -> None:
    event = events.emergency_liquidation(
        AT,
        drawdown=Decimal("0.21"),
        threshold=Decimal("0.20"),
        reserve_released=value,
        positions_closed=closed,
        total_value=pnl,
        reason=reason,
    )
    sms = render(event).sms
    assert len(sms) <= SMS_MAX_CHARS
    assert money(value) in sms and money(pnl) in sms


def test_money_is_dollars_and_cents_rounded_half_up() -> None:
    assert money(Decimal("1234.565")) == "$1,234.57"
    assert money(Decimal("-0.004")) == "$0.00"
    assert money(Decimal("-12.5"), signed=True) == "-$12.50"
    assert money(Decimal("12.5"), signed=True) == "+$12.50"
    assert money(None) == money(float("nan")) == money("abc") == "n/a"
    assert percent(Decimal("0.0312")) == "3.12%"
    assert percent(0.1, signed=True) == "+10.00%"


def test_sms_safe_text_drops_accents_and_two_character_symbols() -> None:
    assert fit_sms("Café {a} ~ [b] | €\nnext") == "Cafe (a) - (b) / ? next"
    assert fit_sms("x" * 500).endswith("...") and len(fit_sms("x" * 500)) == SMS_MAX_CHARS


def _email(event: NotificationEvent) -> str:
    return render(event).text_for(NotificationChannel.EMAIL)


def test_breaker_email_states_the_loss_the_limit_and_the_end_of_the_halt() -> None:
    email = _email(
        events.circuit_breaker_triggered(
            AT,
            trigger_type="daily_loss",
            reason="daily loss beyond 3%",
            threshold_value=Decimal("0.03"),
            actual_value=Decimal("0.0325"),
            cooldown_expires=datetime(2026, 3, 9, 13, 30, tzinfo=UTC),
        )
    )
    assert "3.25%" in email and "3.00%" in email and "2026-03-09 09:30 ET" in email
    assert "daily loss beyond 3%" in email and email.startswith("[stonks] Circuit breaker tripped")
    volatility = _email(
        events.circuit_breaker_triggered(
            AT, trigger_type="volatility", reason="r", threshold_value=3, actual_value=4
        )
    )
    assert "4 stop-outs" in volatility and "3 stop-outs" in volatility


def test_resumed_and_tier_emails() -> None:
    resumed = _email(events.circuit_breaker_resumed(AT, reason="halt over", trigger_type="volatility"))
    assert "volatility" in resumed and "halt over" in resumed
    tier = _email(
        events.risk_tier_changed(
            AT,
            previous_tier="moderate",
            new_tier="conservative",
            reason="downgrade",
            win_rate=0.38,
            drawdown=0.1625,
            reserve_pct=0.2,
        )
    )
    assert "moderate -> conservative" in tier and "38.00%" in tier and "16.25%" in tier and "20.00%" in tier


def test_emergency_email_has_drawdown_reserve_and_total() -> None:
    email = _email(
        events.emergency_liquidation(
            AT,
            drawdown=Decimal("0.2134"),
            threshold=Decimal("0.20"),
            reserve_released=Decimal("1234.5"),
            positions_closed=5,
            total_value=Decimal("9876.543"),
        )
    )
    assert all(figure in email for figure in ("21.34%", "20.00%", "$1,234.50", "$9,876.54", "5"))


def test_large_trade_email_has_prices_and_signed_pnl() -> None:
    email = _email(
        events.large_trade_pnl(
            AT,
            ticker="AAPL",
            quantity=Decimal(12),
            entry_price=Decimal(100),
            exit_price=Decimal("91.5"),
            realized_pnl=Decimal(-102),
            pnl_pct=Decimal("-0.085"),
            exit_reason="stop_loss",
        )
    )
    assert all(
        figure in email for figure in ("AAPL", "12", "$100.00", "$91.50", "-$102.00", "-8.50%", "stop_loss")
    )


def test_summary_and_digest_emails_have_the_days_and_weeks_figures() -> None:
    daily = _email(
        events.daily_summary(
            AT,
            session=date(2026, 3, 6),
            total_value=Decimal("10234.56"),
            day_pnl=Decimal(-120),
            day_pnl_pct=Decimal("-0.0119"),
            realized_pnl=Decimal(80),
            trades_closed=3,
            wins=2,
            losses=1,
            open_positions=4,
            active_pool=Decimal("9234.56"),
            reserve=Decimal(1000),
            risk_tier="moderate",
        )
    )
    assert all(
        f in daily
        for f in (
            "2026-03-06",
            "$10,234.56",
            "-$120.00",
            "-1.19%",
            "+$80.00",
            "3 (2 won, 1 lost)",
            "$9,234.56",
            "$1,000.00",
            "moderate",
        )
    )
    weekly = _email(
        events.weekly_digest(
            AT,
            week_start=date(2026, 3, 2),
            week_end=date(2026, 3, 6),
            total_value=Decimal(10500),
            week_pnl=Decimal(300),
            week_pnl_pct=Decimal("0.0294"),
            realized_pnl=Decimal("210.1"),
            trades_closed=12,
            win_rate=0.5833,
            sharpe=1.4234,
            max_drawdown=0.021,
            reserve=Decimal(1100),
            risk_tier="aggressive",
        )
    )
    assert all(
        f in weekly
        for f in (
            "2026-03-02..2026-03-06",
            "$10,500.00",
            "+$300.00",
            "+2.94%",
            "+$210.10",
            "58.33%",
            "1.42",
            "2.10%",
            "$1,100.00",
            "aggressive",
        )
    )


def test_the_daily_summary_email_carries_the_reserve_high_water_notice_only_when_there_is_one() -> None:
    figures = dict(
        session=date(2026, 3, 6),
        total_value=Decimal(10000),
        day_pnl=Decimal(0),
        day_pnl_pct=0,
        realized_pnl=Decimal(0),
        trades_closed=0,
        wins=0,
        losses=0,
        open_positions=0,
        active_pool=Decimal(6000),
        reserve=Decimal(4000),
        risk_tier="moderate",
    )
    notice = "Reserve Pool 4000 is above 0.30 of total value 10000"
    above = render(events.daily_summary(AT, **figures, reserve_high_water=notice))
    below = render(events.daily_summary(AT, **figures))
    assert "Reserve high-water" in above.body and notice in above.body
    assert "high-water" not in below.body
    assert above.sms == below.sms  # not urgent: the SMS stays the day's figures


def test_missing_figures_read_na_instead_of_failing() -> None:
    for kind in NotificationEventType:
        message = render(NotificationEvent(kind, AT, {}))
        assert "n/a" in message.body


def test_webhook_data_is_json_safe_and_the_event_is_a_frozen_copy() -> None:
    source = {"pnl": Decimal("1.50"), "at": AT, "day": date(2026, 3, 6), "bad": Decimal("NaN"), "x": [1.0]}
    event = NotificationEvent(NotificationEventType.LARGE_TRADE_PNL, AT, source)
    source["pnl"] = Decimal(0)
    assert event.data["pnl"] == Decimal("1.50")
    assert json_safe(event.data) == {
        "pnl": "1.50",
        "at": AT.isoformat(),
        "day": "2026-03-06",
        "bad": None,
        "x": [1.0],
    }


def test_order_rejected_says_what_was_refused_and_the_brokers_reason() -> None:
    event = events.order_rejected(
        AT,
        ticker="AAPL",
        side="buy",
        quantity=Decimal(12),
        order_reason="entry",
        reject_reason="alpaca: insufficient buying power (HTTP 403, code 40310000)",
        client_order_id="ord-1",
        tranches_cancelled=2,
    )
    message = render(event)
    assert message.sms == (
        "STONKS REJECTED buy 12 AAPL (entry): alpaca: insufficient buying power (HTTP 403, code 40310000)"
    )
    assert message.subject == "[stonks] Order rejected: buy 12 AAPL"
    assert "Later tranches cancelled  2" in message.body and "ord-1" in message.body


def test_reconciliation_says_both_figures_the_rule_and_that_entries_are_paused() -> None:
    event = events.reconciliation_discrepancy(
        AT,
        discrepancy_id=7,
        kind="position",
        ticker="XYZ",
        engine_figure=Decimal(10),
        broker_figure=Decimal(0),
        resolution="unexplained",
        rule="unexplained: 10 shares are gone at the broker",
        pauses=True,
    )
    message = render(event)
    assert message.sms.startswith(
        "STONKS RECONCILE position XYZ: engine 10, broker 0. ENTRIES PAUSED until you acknowledge."
    )
    assert (
        message.subject == "[stonks] Broker differs: position XYZ (engine 10, broker 0); new entries paused"
    )
    assert re.search(r"Discrepancy id\s+7\n", message.body)
    assert "acknowledge it on the dashboard" in message.body
