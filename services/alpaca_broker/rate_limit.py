"""Alpaca's request limit, 200 a minute per account, kept on our side of the wire.

Every REST call of the adapter (orders, look-ups, catch-up listings, account reads) asks this
one limiter first, so no burst of ours (a catch-up after a long outage, a storm of retries)
spends the account's budget: at most `limit` requests start in any `window` seconds. A caller
over the budget waits for the oldest request in the window to age out; callers are served in
the order they asked (the lock is held while waiting).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

# What we let ourselves start: a little under Alpaca's 200, because Alpaca counts a request
# when it arrives and we when it leaves, and a slow request followed by a fast one at the
# window's edge would otherwise be the 201st in Alpaca's minute (and a 429 to retry).
REQUEST_BUDGET_PER_MINUTE = 195
MIN_WAIT_SECONDS = 0.001


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int = REQUEST_BUDGET_PER_MINUTE,
        window_seconds: float = 60.0,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a limiter needs a positive limit and window")
        self.limit = limit
        self.window = window_seconds
        self._now = now
        self._sleep = sleep
        self._granted: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait until one more request fits in the window; return the moment it was granted."""
        async with self._lock:
            while True:
                now = self._now()
                while self._granted and self._granted[0] <= now - self.window:
                    self._granted.popleft()
                if len(self._granted) < self.limit:
                    self._granted.append(now)
                    return now
                # At least a millisecond: a timer may wake a hair before the oldest grant ages
                # out (float rounding, clock resolution), and must not spin.
                await self._sleep(max(self._granted[0] + self.window - now, MIN_WAIT_SECONDS))
