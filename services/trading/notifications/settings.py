"""The owner's notification settings: which channels, to whom, how often, about what.

Seed task 16.1, docs/contracts.md section 5 defaults (10 SMS and 20 emails an hour, daily summary 16:30
ET, weekly digest Friday 17:00 ET). They live in the `trading_engine_config` row (018 and
020 migrations) and are edited through GET/PUT /api/trading/notifications/config, so they
hold nothing secret: passwords, tokens and the webhook URL are in `channel_config.py`,
read from the environment only. The value is frozen and replaced whole on change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.shared.config import TradingConfig
from services.shared.schemas import NotificationChannel, NotificationEventType

PHONE_E164 = r"^\+[1-9][0-9]{6,14}$"
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
# Deliberately loose: the mail server is the judge of an address; this only catches typos
# such as a missing @ or a space, which would otherwise fail every send for hours.
EMAIL_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MAX_RATE_PER_HOUR = 10_000
MAX_EMAIL_RECIPIENTS = 20

EmailAddress = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)]


class NotificationSettings(BaseModel):
    """One value of the notification settings; invalid input is refused whole (docs/contracts.md section 7)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sms_enabled: bool = False
    email_enabled: bool = False
    webhook_enabled: bool = False
    telegram_enabled: bool = False
    sms_rate_limit_per_hour: int = Field(10, ge=0, le=MAX_RATE_PER_HOUR)
    email_rate_limit_per_hour: int = Field(20, ge=0, le=MAX_RATE_PER_HOUR)
    # Not in the seed: chat webhooks are cheap but still flood a channel; 30 an hour lets a
    # bad hour's every alert through while stopping a loop gone wrong.
    webhook_rate_limit_per_hour: int = Field(30, ge=0, le=MAX_RATE_PER_HOUR)
    # As a chat webhook's: one message per alert to each of the owner's chats.
    telegram_rate_limit_per_hour: int = Field(30, ge=0, le=MAX_RATE_PER_HOUR)
    notification_event_types: tuple[NotificationEventType, ...] = tuple(NotificationEventType)
    large_trade_pnl_threshold: Decimal = Field(Decimal(100), ge=0, allow_inf_nan=False)
    daily_summary_time: time = time(16, 30)
    weekly_digest_weekday: int = Field(4, ge=0, le=6, description="Monday 0 .. Sunday 6")
    weekly_digest_time: time = time(17, 0)
    sms_phone_number: str | None = Field(None, pattern=PHONE_E164)
    sns_topic_arn: str | None = Field(None, pattern=SNS_TOPIC_ARN)
    email_sender: EmailAddress | None = None
    email_recipients: tuple[EmailAddress, ...] = Field((), max_length=MAX_EMAIL_RECIPIENTS)

    @field_validator("notification_event_types")
    @classmethod
    def _one_each_in_order(
        cls, value: tuple[NotificationEventType, ...]
    ) -> tuple[NotificationEventType, ...]:
        return tuple(t for t in NotificationEventType if t in set(value))

    @field_validator("email_sender")
    @classmethod
    def _sender_is_an_address(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_ADDRESS.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("email_recipients")
    @classmethod
    def _recipients_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not EMAIL_ADDRESS.match(v)]
        if bad:
            raise ValueError(f"not email addresses: {', '.join(map(repr, bad))}")
        return tuple(dict.fromkeys(value))

    @field_validator("daily_summary_time", "weekly_digest_time")
    @classmethod
    def _wall_clock_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a time without a zone: it is read as America/New_York")
        return value.replace(microsecond=0)

    @model_validator(mode="after")
    def _enabled_channels_have_somewhere_to_go(self, info: ValidationInfo) -> NotificationSettings:
        # Refused on input (the API answers 422), tolerated when read back: a stored row
        # written by hand must not stop the engine; the service then records each alert on
        # that channel as failed with the reason, where the owner sees it.
        if info.context and info.context.get("stored"):
            return self
        if self.sms_enabled and not (self.sms_phone_number or self.sns_topic_arn):
            raise ValueError("sms_enabled needs sms_phone_number or sns_topic_arn")
        if self.email_enabled and not self.email_recipients:
            raise ValueError("email_enabled needs at least one address in email_recipients")
        return self

    def enabled_channels(self) -> tuple[NotificationChannel, ...]:
        flags = {
            NotificationChannel.SMS: self.sms_enabled,
            NotificationChannel.EMAIL: self.email_enabled,
            NotificationChannel.WEBHOOK: self.webhook_enabled,
            NotificationChannel.TELEGRAM: self.telegram_enabled,
        }
        return tuple(channel for channel, on in flags.items() if on)

    def rate_limit(self, channel: NotificationChannel) -> int:
        return {
            NotificationChannel.SMS: self.sms_rate_limit_per_hour,
            NotificationChannel.EMAIL: self.email_rate_limit_per_hour,
            NotificationChannel.WEBHOOK: self.webhook_rate_limit_per_hour,
            NotificationChannel.TELEGRAM: self.telegram_rate_limit_per_hour,
        }[NotificationChannel(channel)]


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """Before and after a save, for the `trading_config_audit` row the API writes."""

    previous: NotificationSettings
    new: NotificationSettings


_COLUMNS = tuple(NotificationSettings.model_fields)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM trading_engine_config WHERE id = 1"


def with_fallback(values: dict[str, Any], fallback: TradingConfig | None) -> dict[str, Any]:
    """Stored settings as they are in force: recipients not stored come from the environment.
    Deployments configured before the API existed set recipients there (seed task 1.4); they
    stand until the owner saves recipients of their own."""
    if fallback is None:
        return values
    values = dict(values)
    values["sms_phone_number"] = values["sms_phone_number"] or fallback.sns_phone_number
    values["sns_topic_arn"] = values["sns_topic_arn"] or fallback.sns_topic_arn
    values["email_sender"] = values["email_sender"] or fallback.gmail_sender
    if not values["email_recipients"] and fallback.gmail_recipient:
        values["email_recipients"] = (fallback.gmail_recipient,)
    return values


def _from_row(row: asyncpg.Record, fallback: TradingConfig | None) -> NotificationSettings:
    values = {column: row[column] for column in _COLUMNS}
    values["email_recipients"] = tuple(values["email_recipients"] or ())
    values["notification_event_types"] = tuple(values["notification_event_types"] or ())
    return NotificationSettings.model_validate(with_fallback(values, fallback), context={"stored": True})


async def load_notification_settings(
    conn: asyncpg.Connection | asyncpg.Pool, fallback: TradingConfig | None = None
) -> NotificationSettings:
    """The settings in force; recipients not set in the database come from `fallback`."""
    row = await conn.fetchrow(_SELECT)
    if row is None:
        raise LookupError("trading_engine_config has no row: run the migrations")
    return _from_row(row, fallback)


async def save_notification_settings(
    conn: asyncpg.Connection, settings: NotificationSettings, fallback: TradingConfig | None = None
) -> SettingsChange:
    """Replace the stored settings whole, in one transaction; return before and after."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(_COLUMNS, start=1))
    values = settings.model_dump()
    values["notification_event_types"] = [str(t) for t in settings.notification_event_types]
    values["email_recipients"] = list(settings.email_recipients)
    async with conn.transaction():
        row = await conn.fetchrow(_SELECT + " FOR UPDATE")
        if row is None:
            raise LookupError("trading_engine_config has no row: run the migrations")
        previous = _from_row(row, fallback)
        await conn.execute(
            f"UPDATE trading_engine_config SET {assignments}, updated_at = now() WHERE id = 1",
            *(values[column] for column in _COLUMNS),
        )
    return SettingsChange(previous, settings)
