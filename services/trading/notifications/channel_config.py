"""How to reach each channel: servers, providers and secrets, from the environment only.

Secrets (SMTP password, Gmail client secret and refresh token, webhook URL) are read from
`STONKS_*` environment variables or, with `STONKS_SECRETS_DIR`, from one file per secret
in that directory (e.g. a Kubernetes secret mounted as files: `stonks_smtp_password`).
They are `SecretStr`, so printing or dumping this object shows `**********`; they are never
stored in PostgreSQL nor returned by the API. AWS credentials follow boto3's own chain.
Who receives what (`NotificationSettings`) is the owner's and lives in the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.shared.config import SECRETS_DIR_VARIABLE
from services.shared.schemas import NotificationChannel
from services.trading.core.clock import Clock
from services.trading.notifications.channel import Channel, UnconfiguredChannel
from services.trading.notifications.gmail_api import GMAIL_API_BASE_URL, GOOGLE_TOKEN_URL, GmailApiEmail
from services.trading.notifications.settings import NotificationSettings
from services.trading.notifications.sms_sns import SnsSms
from services.trading.notifications.smtp_email import SmtpEmail, SmtpSecurity
from services.trading.notifications.telegram import TELEGRAM_API_URL, TelegramChannel, make_bot
from services.trading.notifications.webhook import Webhook


class EmailProvider(StrEnum):
    SMTP = "smtp"
    GMAIL_API = "gmail_api"


class ChannelConfig(BaseSettings):
    """Deployment settings of the channels (`STONKS_*`), validated once at start."""

    model_config = SettingsConfigDict(
        env_prefix="STONKS_", frozen=True, extra="ignore", populate_by_name=True
    )

    email_provider: EmailProvider = EmailProvider.SMTP
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    gmail_client_id: str | None = None
    gmail_client_secret: SecretStr | None = None
    gmail_refresh_token: SecretStr | None = None
    gmail_token_url: str = GOOGLE_TOKEN_URL
    gmail_api_base_url: str = GMAIL_API_BASE_URL
    webhook_url: SecretStr | None = None
    # AWS_REGION is what most AWS tooling sets, but botocore reads only AWS_DEFAULT_REGION
    # (or the profile's region), which still applies when neither of these is set.
    sns_region: str | None = Field(None, validation_alias=AliasChoices("STONKS_SNS_REGION", "AWS_REGION"))
    sns_endpoint_url: str | None = None
    channel_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Telegram (issue 17): the bot's token from @BotFather, and the owner's chats: alerts go to
    # them, and only they may command the bot. Ids, comma-separated: "12345,-100987".
    telegram_bot_token: SecretStr | None = None
    telegram_chat_ids: Annotated[tuple[int, ...], NoDecode] = ()
    telegram_api_url: str = TELEGRAM_API_URL

    @field_validator("telegram_chat_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def load_channel_config(environ: Mapping[str, str] | None = None) -> ChannelConfig:
    """Read the channel settings; secrets may come from files in `STONKS_SECRETS_DIR`."""
    env = os.environ if environ is None else environ
    secrets_dir = env.get(SECRETS_DIR_VARIABLE) or None
    return ChannelConfig(_secrets_dir=secrets_dir)


def _sms(config: ChannelConfig, settings: NotificationSettings) -> Channel:
    if not (settings.sms_phone_number or settings.sns_topic_arn):
        return UnconfiguredChannel(
            NotificationChannel.SMS,
            "SMS is enabled but no sms_phone_number or sns_topic_arn is set in the notification settings",
        )
    return SnsSms(
        phone_number=settings.sms_phone_number,
        topic_arn=settings.sns_topic_arn,
        region=config.sns_region,
        endpoint_url=config.sns_endpoint_url,
        timeout_seconds=config.channel_timeout_seconds,
    )


def _email(config: ChannelConfig, settings: NotificationSettings, clock: Clock) -> Channel:
    if not settings.email_recipients:
        return UnconfiguredChannel(
            NotificationChannel.EMAIL, "email is enabled but email_recipients is empty"
        )
    if config.email_provider is EmailProvider.GMAIL_API:
        if not (config.gmail_client_id and config.gmail_client_secret and config.gmail_refresh_token):
            return UnconfiguredChannel(
                NotificationChannel.EMAIL,
                "Gmail API email needs STONKS_GMAIL_CLIENT_ID, "
                "STONKS_GMAIL_CLIENT_SECRET and STONKS_GMAIL_REFRESH_TOKEN",
            )
        return GmailApiEmail(
            client_id=config.gmail_client_id,
            client_secret=config.gmail_client_secret,
            refresh_token=config.gmail_refresh_token,
            recipients=settings.email_recipients,
            sender=settings.email_sender,
            clock=clock,
            token_url=config.gmail_token_url,
            api_base_url=config.gmail_api_base_url,
            timeout_seconds=config.channel_timeout_seconds,
        )
    if not config.smtp_host:
        return UnconfiguredChannel(NotificationChannel.EMAIL, "SMTP email needs STONKS_SMTP_HOST")
    sender = settings.email_sender or config.smtp_username
    if not sender:
        return UnconfiguredChannel(
            NotificationChannel.EMAIL,
            "SMTP email needs email_sender in the notification settings or STONKS_SMTP_USERNAME",
        )
    return SmtpEmail(
        host=config.smtp_host,
        port=config.smtp_port,
        sender=sender,
        recipients=settings.email_recipients,
        security=config.smtp_security,
        username=config.smtp_username,
        password=config.smtp_password,
        timeout_seconds=config.channel_timeout_seconds,
    )


def _webhook(config: ChannelConfig) -> Channel:
    if config.webhook_url is None:
        return UnconfiguredChannel(
            NotificationChannel.WEBHOOK, "webhook is enabled but STONKS_WEBHOOK_URL is unset"
        )
    return Webhook(config.webhook_url, timeout_seconds=config.channel_timeout_seconds)


def _telegram(config: ChannelConfig) -> Channel:
    if config.telegram_bot_token is None or not config.telegram_chat_ids:
        return UnconfiguredChannel(
            NotificationChannel.TELEGRAM,
            "telegram is enabled but STONKS_TELEGRAM_BOT_TOKEN or STONKS_TELEGRAM_CHAT_IDS is unset",
        )
    token = config.telegram_bot_token
    return TelegramChannel(
        lambda: make_bot(token, config.telegram_api_url, config.channel_timeout_seconds),
        config.telegram_chat_ids,
    )


def build_channels(
    config: ChannelConfig, settings: NotificationSettings, clock: Clock
) -> dict[NotificationChannel, Channel]:
    """An adapter for every enabled channel; one missing a setting fails each send with the
    name of that setting, so a half-configured channel shows up in the notification log."""
    builders = {
        NotificationChannel.SMS: lambda: _sms(config, settings),
        NotificationChannel.EMAIL: lambda: _email(config, settings, clock),
        NotificationChannel.WEBHOOK: lambda: _webhook(config),
        NotificationChannel.TELEGRAM: lambda: _telegram(config),
    }
    return {channel: builders[channel]() for channel in settings.enabled_channels()}
