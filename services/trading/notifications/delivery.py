"""One delivery attempt with a time limit, and the retry schedule (seed task 16.1).

docs/contracts.md section 5: up to 3 retries with exponential backoff (1 s, 2 s, 4 s by default). Every
failure of a channel becomes an `AttemptOutcome` with a readable, redacted reason; nothing
a channel does (raise anything, hang, swallow cancellation) escapes as an exception.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.trading.notifications.channel import Channel, ChannelError
from services.trading.notifications.formatting import Message
from services.trading.notifications.redaction import redact

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """`queue_size` is per channel; `store_timeout` bounds each write to the log."""

    retries: int = 3
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    attempt_timeout_seconds: float = 15.0
    store_timeout_seconds: float = 5.0
    queue_size: int = 100

    def __post_init__(self) -> None:
        if self.retries < 0 or self.queue_size < 1:
            raise ValueError("retries must be >= 0 and queue_size >= 1")
        if min(self.backoff_base_seconds, self.backoff_max_seconds) < 0:
            raise ValueError("backoff must be >= 0")
        if min(self.attempt_timeout_seconds, self.store_timeout_seconds) <= 0:
            raise ValueError("timeouts must be > 0")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


def backoff_delay(policy: DeliveryPolicy, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1-based): base * 2**(retry - 1), capped."""
    return min(policy.backoff_base_seconds * 2 ** (retry - 1), policy.backoff_max_seconds)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    delivered: bool
    error: str | None = None
    permanent: bool = False


def _consume(task: asyncio.Task) -> None:
    """Collect an abandoned send's result so asyncio does not warn it was never retrieved."""
    if not task.cancelled():
        task.exception()


async def attempt(channel: Channel, message: Message, timeout: float) -> AttemptOutcome:
    """Send once; a send still running after `timeout` is cancelled and left behind (a
    channel that ignores cancellation must not hold the worker)."""
    try:
        task = asyncio.ensure_future(channel.send(message))
    except Exception as exc:  # noqa: BLE001 - a send that raised (or returned no awaitable) at the call
        return AttemptOutcome(False, _clean(f"{type(exc).__name__}: {exc}"))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        return AttemptOutcome(False, f"no answer within {timeout:g} s")
    if task.cancelled():
        return AttemptOutcome(False, "the channel cancelled its own send")
    exc = task.exception()
    if exc is None:
        return AttemptOutcome(True)
    if isinstance(exc, ChannelError):
        return AttemptOutcome(False, _clean(str(exc)), exc.permanent)
    return AttemptOutcome(False, _clean(f"{type(exc).__name__}: {exc}"))


def _clean(error: str) -> str:
    error = redact(error) or "unknown error"
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."
