"""The Telegram channel (issue 17): python-telegram-bot's `Bot` against a local fake Bot API
server; through the service as the engine runs it, every alert is one message to each of
the owner's chats and a `telegram` row in the notification log; the token never shows."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from pydantic import SecretStr

from services.shared.schemas import NotificationChannel as C
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.channel_config import ChannelConfig, build_channels
from services.trading.notifications.formatting import render
from services.trading.notifications.notification_store import PostgresNotificationStore
from services.trading.notifications.rate_limit import RateLimiter
from services.trading.notifications.service import NotificationService
from services.trading.notifications.settings import NotificationSettings
from tests.trading.telegram.fake_bot_api import TOKEN, fake_bot_api

from .conftest import FAST, breaker_event

CHATS = (4242, -1001234)


@pytest.mark.integration
async def test_every_alert_reaches_each_owner_chat_and_is_logged(pool, redis_client, clock, caplog) -> None:
    async with fake_bot_api() as fake:
        config = ChannelConfig(
            telegram_bot_token=TOKEN, telegram_chat_ids=CHATS, telegram_api_url=fake.base_url
        )
        service = NotificationService(
            settings=NotificationSettings(telegram_enabled=True),
            channel_factory=lambda s: build_channels(config, s, clock),
            store=PostgresNotificationStore(pool),
            rate_limiter=RateLimiter(redis_client),
            clock=clock,
            policy=FAST,
        )
        caplog.set_level(logging.DEBUG)
        with structlog.testing.capture_logs() as structured:
            await service.start()
            service.notify(breaker_event())
            await service.drain(timeout=20)
            await service.stop()
    message = render(breaker_event())
    sent = [c.params for c in fake.calls if c.method == "sendMessage"]
    assert sent == [{"chat_id": chat, "text": f"{message.subject}\n\n{message.body}"} for chat in CHATS]
    stored = await pool.fetch("SELECT channel, delivery_status, message FROM notifications")
    assert [(r["channel"], r["delivery_status"]) for r in stored] == [("telegram", "delivered")]
    assert stored[0]["message"] == f"{message.subject}\n\n{message.body}"
    everything = caplog.text + json.dumps(structured, default=str) + json.dumps([dict(r) for r in stored])
    assert "sendMessage" in caplog.text and TOKEN not in everything and TOKEN.split(":")[1] not in everything


async def test_a_refused_token_is_permanent_and_not_repeated() -> None:
    async with fake_bot_api() as fake:
        config = ChannelConfig(
            telegram_bot_token="999:not-the-token", telegram_chat_ids=CHATS, telegram_api_url=fake.base_url
        )
        channel = build_channels(config, NotificationSettings(telegram_enabled=True), None)[C.TELEGRAM]
        with pytest.raises(ChannelError) as error:
            await channel.send(render(breaker_event()))
    assert error.value.permanent and str(error.value) == "telegram refused: InvalidToken"
    assert "not-the-token" not in str(error.value)


async def test_enabled_without_token_or_chats_says_which_setting() -> None:
    for config in (
        ChannelConfig(telegram_chat_ids=CHATS),
        ChannelConfig(telegram_bot_token=SecretStr(TOKEN)),
    ):
        channel = build_channels(config, NotificationSettings(telegram_enabled=True), None)[C.TELEGRAM]
        with pytest.raises(ChannelError) as error:
            await channel.send(render(breaker_event()))
        assert error.value.permanent and "STONKS_TELEGRAM_BOT_TOKEN or STONKS_TELEGRAM_CHAT_IDS" in str(
            error.value
        )
