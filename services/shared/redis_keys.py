"""Every Redis key and queue name the system uses (seed task 1.3, docs/contracts.md section 4).

Kept in one place so the engine, the paper broker and the tests cannot drift apart.
"""

from __future__ import annotations

KEY_PREFIX = "stonks"

# Queues (Redis lists). The broker consumes orders; the engine consumes fills.
QUEUE_BROKER_ORDERS = f"{KEY_PREFIX}:queue:broker_orders"
QUEUE_BROKER_FILLS = f"{KEY_PREFIX}:queue:broker_fills"
QUEUE_TRADING_DECISIONS = "trading_decisions"

# A job taken from a queue sits in its processing list until handled, so a consumer that
# dies mid-job leaves it there to be recovered (reliable-queue pattern with LMOVE).
PROCESSING_SUFFIX = ":processing"

TRADING_DEDUPE_PREFIX = f"{KEY_PREFIX}:dedupe:trading"
TRADING_DEDUPE_TTL_SECONDS = 24 * 60 * 60
TRADING_CB_PREFIX = f"{KEY_PREFIX}:trading:circuit_breaker"
TRADING_NOTIFICATION_RATE = f"{KEY_PREFIX}:trading:notification_rate"


def processing_queue(queue: str) -> str:
    return f"{queue}{PROCESSING_SUFFIX}"


def dedupe_key(recommendation_id: object) -> str:
    return f"{TRADING_DEDUPE_PREFIX}:{recommendation_id}"


def notification_rate_key(channel: str, hour_bucket: str) -> str:
    """Counter of one channel's sends in one clock hour, e.g. ``...:sms:2026112516``."""
    return f"{TRADING_NOTIFICATION_RATE}:{channel}:{hour_bucket}"
