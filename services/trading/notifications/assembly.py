"""The notification service built from the real adapters: what the engine calls at start.

Kept apart from `service.py` so the service itself depends only on Protocols.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from services.shared.config import TradingConfig
from services.trading.core.clock import Clock
from services.trading.notifications.channel_config import ChannelConfig, build_channels, load_channel_config
from services.trading.notifications.delivery import DeliveryPolicy
from services.trading.notifications.notification_store import PostgresNotificationStore
from services.trading.notifications.rate_limit import RateLimiter
from services.trading.notifications.service import NotificationService
from services.trading.notifications.settings import load_notification_settings


async def open_notification_service(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    clock: Clock,
    *,
    trading_config: TradingConfig | None = None,
    channel_config: ChannelConfig | None = None,
    policy: DeliveryPolicy | None = None,
) -> NotificationService:
    """Settings from `trading_engine_config` (recipients falling back to `trading_config`),
    secrets from the environment; not started: call `start()`."""
    settings = await load_notification_settings(pool, trading_config)
    config = channel_config or load_channel_config()
    return NotificationService(
        settings=settings,
        channel_factory=lambda s: build_channels(config, s, clock),
        store=PostgresNotificationStore(pool),
        rate_limiter=RateLimiter(redis),
        clock=clock,
        policy=policy,
    )
