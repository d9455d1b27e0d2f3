"""Control from the phone (issue 17): python-telegram-bot polling a local fake Bot API server,
on the real database with a history the live stack made. The owner's chat reads what the API
reads and changes the engine only after a confirmation tap; a stranger's chat is refused; every
command and tap is audited with its chat as the source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from services.trading.notifications.formatting import money
from services.trading.telegram.control import TelegramControl
from tests.trading.telegram.fake_bot_api import TOKEN, Call, FakeBotApi, fake_bot_api

pytestmark = pytest.mark.integration

OWNER, STRANGER = 4242, 999


@asynccontextmanager
async def running(api) -> AsyncIterator[FakeBotApi]:
    async with fake_bot_api() as fake:
        control = TelegramControl(
            api.runtime,
            token=SecretStr(TOKEN),
            owner_chat_ids=[OWNER],
            base_url=fake.base_url,
            poll_timeout=1,
        )
        await control.start()
        try:
            yield fake
        finally:
            await control.stop()


async def say(fake: FakeBotApi, chat: int, text: str) -> Call:
    """Send `text` from `chat` and wait for the bot's answer there."""
    before = len(fake.calls)
    await fake.say(chat, text)
    return await fake.reply(chat, after=before)


async def tap(fake: FakeBotApi, chat: int, question: Call, button: str) -> tuple[Call, Call | None]:
    """Tap `button` under the bot's `question` as `chat`: the tap's answer, and the question
    edited into the outcome (None when the tap was refused)."""
    [row] = question.params["reply_markup"]["inline_keyboard"]
    data = next(b["callback_data"] for b in row if b["text"] == button)
    message = fake.messages[question.result["message_id"]]
    before = len(fake.calls)
    query = await fake.tap(chat, {**message, "chat": {"id": chat, "type": "private"}}, data)
    await fake.wait(lambda: bool(fake.answers(query)))
    [answer] = fake.answers(query)
    if answer.params.get("show_alert"):
        return answer, None
    await fake.wait(lambda: any(c.method == "editMessageText" for c in fake.calls[before:]))
    return answer, next(c for c in fake.calls[before:] if c.method == "editMessageText")


async def audit(api) -> list[str]:
    rows = await api.pool.fetch("SELECT change_source FROM trading_config_audit ORDER BY id")
    return [r["change_source"] for r in rows if r["change_source"].startswith("telegram:")]


async def config(api) -> dict:
    return dict(await api.pool.fetchrow("SELECT paused, risk_tier FROM trading_engine_config WHERE id = 1"))


async def test_the_owner_reads_what_the_api_reads(traded) -> None:
    api, _ = traded
    async with running(api) as fake:
        status = (await api.client.get("/api/trading/status")).json()
        answer = (await say(fake, OWNER, "/status")).params["text"]
        assert (
            money(Decimal(status["total_value"])) in answer and f"Risk tier: {status['risk_tier']}" in answer
        )
        assert money(Decimal(status["reserve_pool"])) in answer
        positions = (await api.client.get("/api/trading/positions")).json()["items"]
        answer = (await say(fake, OWNER, "/positions")).params["text"]
        assert positions and all(p["ticker"] in answer for p in positions)
        assert all(money(Decimal(p["unrealized_pnl"]), signed=True) in answer for p in positions)
        trades = (await api.client.get("/api/trading/trades")).json()["items"]
        answer = (await say(fake, OWNER, "/trades")).params["text"]
        assert trades and all(
            f"{t['ticker']}" in answer and money(Decimal(t["pnl"]), signed=True) in answer for t in trades
        )
        last = await api.pool.fetchrow(
            "SELECT * FROM portfolio_snapshots ORDER BY snapshot_date DESC LIMIT 1"
        )
        answer = (await say(fake, OWNER, "/daily")).params["text"]
        assert f"Trading day {last['snapshot_date']} is closed." in answer
        assert money(last["portfolio_value"]) in answer
        assert "/halt" in (await say(fake, OWNER, "/help")).params["text"]
        assert "/halt" in (await say(fake, OWNER, "/frobnicate now")).params["text"]  # unknown: the list
    assert await audit(api) == [
        f"telegram: /{c} (chat {OWNER})"
        for c in ("status", "positions", "trades", "daily", "help", "frobnicate now")
    ]


async def test_changes_need_the_owner_and_a_tap(api) -> None:
    async with running(api) as fake:
        # A stranger is refused and told its chat id; nothing is asked, nothing changes.
        refused = await say(fake, STRANGER, "/pause")
        assert f"This chat ({STRANGER}) may not command" in refused.params["text"]
        assert "reply_markup" not in refused.params
        assert (await config(api))["paused"] is False

        # The owner is asked first; the pause happens on the tap.
        question = await say(fake, OWNER, "/pause")
        assert question.params["text"].startswith("Pause trading?")
        assert (await config(api))["paused"] is False
        # The stranger cannot tap the owner's question either (a forged tap from its chat).
        answer, edit = await tap(fake, STRANGER, question, "Confirm")
        assert answer.params["show_alert"] is True and edit is None
        assert (await config(api))["paused"] is False
        answer, edit = await tap(fake, OWNER, question, "Confirm")
        assert answer.params["text"] == "Paused: no new entries." and edit is not None
        assert edit.params["text"] == "/pause: Paused: no new entries."
        assert (await config(api))["paused"] is True
        # Answered once: a second tap on the same question changes nothing.
        answer, edit = await tap(fake, OWNER, question, "Confirm")
        assert answer.params["show_alert"] is True and edit is None

        # /tier: cancelled, then confirmed; a bad tier is not asked.
        assert "Which tier?" in (await say(fake, OWNER, "/tier reckless")).params["text"]
        question = await say(fake, OWNER, "/tier conservative")
        _, edit = await tap(fake, OWNER, question, "Cancel")
        assert edit.params["text"] == "/tier conservative: cancelled, nothing changed."
        assert (await config(api))["risk_tier"] == "moderate"
        question = await say(fake, OWNER, "/tier conservative")
        _, edit = await tap(fake, OWNER, question, "Confirm")
        assert edit.params["text"] == "/tier conservative: Risk tier: moderate → conservative."
        assert (await config(api))["risk_tier"] == "conservative"

        # /halt needs a reason; confirmed, it is the manual breaker with the chat as its source.
        assert "Say why" in (await say(fake, OWNER, "/halt")).params["text"]
        question = await say(fake, OWNER, "/halt earnings season looks wild")
        _, edit = await tap(fake, OWNER, question, "Confirm")
        assert "Halted" in edit.params["text"]
        breaker = (await api.client.get("/api/trading/status")).json()["circuit_breaker"]
        assert breaker["active"] and breaker["trigger"] == "manual"
        assert (
            f"earnings season looks wild (telegram: /halt earnings season looks wild confirmed (chat {OWNER}))"
            in breaker["reason"]
        )

        # A question left unanswered expires.
        question = await say(fake, OWNER, "/resume")
        api.clock.set(api.clock.now() + timedelta(minutes=6))
        _, edit = await tap(fake, OWNER, question, "Confirm")
        assert edit.params["text"] == "/resume: expired, nothing changed."
        assert (await config(api))["paused"] is True

    sources = await audit(api)
    assert sources[:2] == [
        f"telegram: /pause refused: chat {STRANGER} is not the owner's",
        f"telegram: /pause (chat {OWNER})",
    ]
    assert f"telegram: tap 'yes' refused (chat {STRANGER})" in sources
    assert f"telegram: /tier conservative cancelled (chat {OWNER})" in sources
    assert f"telegram: /resume expired (chat {OWNER})" in sources
    # The changes themselves, recorded as the API records them, with the chat as the source.
    change = await api.pool.fetchrow(
        "SELECT previous_config, new_config FROM trading_config_audit WHERE change_source = $1 "
        "AND previous_config <> new_config",
        f"telegram: /pause confirmed (chat {OWNER})",
    )
    assert change["previous_config"]["paused"] is False and change["new_config"]["paused"] is True
    tier = await api.pool.fetchrow(
        "SELECT trigger_source, new_tier FROM risk_tier_history ORDER BY id DESC LIMIT 1"
    )
    assert tuple(tier) == (f"telegram: /tier conservative confirmed (chat {OWNER})", "conservative")
