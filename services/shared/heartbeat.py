"""When a long-running loop of this process (the engine's, the paper broker's) last finished a
pass, so that /ready can tell a loop that runs from one that died or hangs.

Measured on the monotonic clock: it is about this process's own progress, not market time
(which tests and the demo simulate).
"""

from __future__ import annotations

import time


class Heartbeat:
    def __init__(self) -> None:
        self._last: float | None = None

    def beat(self) -> None:
        """The loop is running and has just finished a pass (or started)."""
        self._last = time.monotonic()

    def stopped(self) -> None:
        """The loop has ended (stopped, or died and awaits its restart)."""
        self._last = None

    def silent_for(self) -> float | None:
        """Seconds since the last beat; None while the loop is not running."""
        return None if self._last is None else time.monotonic() - self._last
