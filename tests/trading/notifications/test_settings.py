"""Owner settings round-trip through `trading_engine_config`; secrets come only from the
environment or a secrets directory and never show in a dump."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from services.shared.config import TradingConfig
from services.shared.schemas import NotificationChannel, NotificationEventType
from services.trading.core.clock import SimulatedClock
from services.trading.notifications.channel import UnconfiguredChannel
from services.trading.notifications.channel_config import (
    ChannelConfig,
    EmailProvider,
    build_channels,
    load_channel_config,
)
from services.trading.notifications.gmail_api import GmailApiEmail
from services.trading.notifications.settings import (
    NotificationSettings,
    load_notification_settings,
    save_notification_settings,
)
from services.trading.notifications.sms_sns import SnsSms
from services.trading.notifications.smtp_email import SmtpEmail
from services.trading.notifications.webhook import Webhook

from .conftest import NOON

SECRET_VARIABLES = (
    "STONKS_SMTP_PASSWORD",
    "STONKS_GMAIL_CLIENT_SECRET",
    "STONKS_GMAIL_REFRESH_TOKEN",
    "STONKS_WEBHOOK_URL",
    "STONKS_SECRETS_DIR",
    "STONKS_SMTP_HOST",
    "STONKS_EMAIL_PROVIDER",
    "STONKS_GMAIL_CLIENT_ID",
    "STONKS_SMTP_USERNAME",
    "STONKS_SNS_REGION",
    "AWS_REGION",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.integration
async def test_migrated_defaults_are_the_spec_defaults(db: asyncpg.Connection) -> None:
    stored = await load_notification_settings(db)
    assert stored == NotificationSettings()
    assert (stored.sms_rate_limit_per_hour, stored.email_rate_limit_per_hour) == (10, 20)
    assert (stored.daily_summary_time, stored.weekly_digest_weekday, stored.weekly_digest_time) == (
        time(16, 30),
        4,
        time(17, 0),
    )
    assert stored.notification_event_types == tuple(NotificationEventType)
    assert stored.enabled_channels() == ()


@pytest.mark.integration
async def test_save_replaces_the_settings_whole_and_returns_before_and_after(db: asyncpg.Connection) -> None:
    new = NotificationSettings(
        sms_enabled=True,
        sms_phone_number="+15555550123",
        email_enabled=True,
        email_recipients=("me@example.com", "partner@example.org"),
        email_sender="engine@example.com",
        webhook_enabled=True,
        sms_rate_limit_per_hour=5,
        email_rate_limit_per_hour=7,
        webhook_rate_limit_per_hour=9,
        telegram_enabled=True,
        telegram_rate_limit_per_hour=11,
        notification_event_types=(NotificationEventType.WEEKLY_DIGEST, NotificationEventType.LARGE_TRADE_PNL),
        large_trade_pnl_threshold=Decimal("250.50"),
        daily_summary_time=time(17, 5),
        weekly_digest_weekday=5,
        weekly_digest_time=time(9, 0),
    )
    change = await save_notification_settings(db, new)
    assert change.previous == NotificationSettings() and change.new == new
    assert await load_notification_settings(db) == new
    # Stored in enum order whatever order the owner gave.
    assert new.notification_event_types == (
        NotificationEventType.LARGE_TRADE_PNL,
        NotificationEventType.WEEKLY_DIGEST,
    )
    assert (await save_notification_settings(db, NotificationSettings())).previous == new


@pytest.mark.integration
async def test_environment_recipients_stand_until_the_owner_saves_some(db: asyncpg.Connection) -> None:
    env = TradingConfig(
        sns_phone_number="+15555550199", gmail_sender="bot@example.com", gmail_recipient="owner@example.com"
    )
    loaded = await load_notification_settings(db, env)
    assert (loaded.sms_phone_number, loaded.email_sender, loaded.email_recipients) == (
        "+15555550199",
        "bot@example.com",
        ("owner@example.com",),
    )
    await save_notification_settings(db, NotificationSettings(email_recipients=("new@example.com",)), env)
    assert (await load_notification_settings(db, env)).email_recipients == ("new@example.com",)


@pytest.mark.integration
async def test_the_database_refuses_a_malformed_phone_number(db: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE trading_engine_config SET sms_phone_number = '555-0100'")


@pytest.mark.integration
async def test_a_hand_written_row_with_no_recipient_still_loads(db: asyncpg.Connection) -> None:
    # The service then records each email as failed with the reason (test_service).
    await db.execute("UPDATE trading_engine_config SET email_enabled = true")
    loaded = await load_notification_settings(db)
    assert loaded.email_enabled and loaded.email_recipients == ()
    channels = build_channels(ChannelConfig(), loaded, SimulatedClock(NOON))
    assert isinstance(channels[NotificationChannel.EMAIL], UnconfiguredChannel)


@pytest.mark.parametrize(
    "bad",
    [
        {"sms_enabled": True},
        {"email_enabled": True},
        {"sms_phone_number": "5555550100"},
        {"sns_topic_arn": "arn:aws:s3:::bucket"},
        {"email_recipients": ["not an address"]},
        {"email_sender": "nobody"},
        {"sms_rate_limit_per_hour": -1},
        {"weekly_digest_weekday": 7},
        {"large_trade_pnl_threshold": "-5"},
        {"large_trade_pnl_threshold": "NaN"},
        {"notification_event_types": ["stock_split"]},
        {"smtp_password": "hunter22"},  # secrets are not settings: refused, not silently ignored
    ],
)
def test_invalid_settings_are_refused_with_the_field_named(bad: dict) -> None:
    with pytest.raises(ValidationError) as error:
        NotificationSettings.model_validate(bad)
    assert error.value.errors()[0]["loc"] in ((), (next(iter(bad)),), (next(iter(bad)), 0))


def test_settings_hold_nothing_secret() -> None:
    fields = " ".join(NotificationSettings.model_fields)
    assert not any(word in fields for word in ("password", "token", "secret", "url", "key"))


def test_secrets_come_from_the_environment_and_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STONKS_SMTP_PASSWORD", "env-smtp-password-123")
    monkeypatch.setenv("STONKS_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/env-webhook-secret")
    config = load_channel_config()
    assert config.smtp_password.get_secret_value() == "env-smtp-password-123"
    shown = repr(config) + str(config) + config.model_dump_json() + str(config.model_dump())
    assert "env-smtp-password-123" not in shown and "env-webhook-secret" not in shown


def test_secrets_can_come_from_a_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stonks_gmail_refresh_token").write_text("file-refresh-token-456\n")
    (tmp_path / "stonks_gmail_client_secret").write_text("file-client-secret-789")
    monkeypatch.setenv("STONKS_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STONKS_EMAIL_PROVIDER", "gmail_api")
    monkeypatch.setenv("STONKS_GMAIL_CLIENT_ID", "client-id.apps.example")
    config = load_channel_config()
    assert config.email_provider is EmailProvider.GMAIL_API
    assert config.gmail_refresh_token.get_secret_value() == "file-refresh-token-456"  # newline stripped
    assert "file-refresh-token-456" not in config.model_dump_json()


def test_each_enabled_channel_gets_its_adapter_or_the_missing_setting_named() -> None:
    settings = NotificationSettings(
        sms_enabled=True,
        sns_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        email_enabled=True,
        email_recipients=("me@example.com",),
        webhook_enabled=True,
    )
    clock = SimulatedClock(NOON)
    bare = build_channels(ChannelConfig(), settings, clock)
    assert isinstance(bare[NotificationChannel.SMS], SnsSms)
    assert "STONKS_SMTP_HOST" in bare[NotificationChannel.EMAIL].reason
    assert "STONKS_WEBHOOK_URL" in bare[NotificationChannel.WEBHOOK].reason
    full = build_channels(
        ChannelConfig(
            smtp_host="smtp.gmail.com",
            smtp_username="me@gmail.com",
            webhook_url="https://hooks.example.com/x/abcdef",
        ),
        settings,
        clock,
    )
    assert isinstance(full[NotificationChannel.EMAIL], SmtpEmail)
    assert isinstance(full[NotificationChannel.WEBHOOK], Webhook)
    gmail = build_channels(
        ChannelConfig(
            email_provider="gmail_api",
            gmail_client_id="id",
            gmail_client_secret="client-secret-x",
            gmail_refresh_token="refresh-x",
        ),
        settings,
        clock,
    )
    assert isinstance(gmail[NotificationChannel.EMAIL], GmailApiEmail)
    assert build_channels(ChannelConfig(), NotificationSettings(), clock) == {}


def test_sns_region_from_stonks_variable_or_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert load_channel_config().sns_region == "eu-west-1"
    monkeypatch.setenv("STONKS_SNS_REGION", "us-west-2")
    assert load_channel_config().sns_region == "us-west-2"
