"""The shared limiter never lets more than `limit` requests start within `window` seconds, and
never makes a request wait when the window has room (checked against a brute-force count)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from services.alpaca_broker.rate_limit import SlidingWindowLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def _grants(limit: int, window: float, gaps: list[float]) -> tuple[list[float], list[float]]:
    """Requests asked one after another, each `gap` after the previous was granted."""
    time = FakeTime()
    limiter = SlidingWindowLimiter(limit, window, now=time, sleep=time.sleep)
    asked, granted = [], []

    async def run() -> None:
        for gap in gaps:
            time.now += gap
            asked.append(time.now)
            granted.append(await limiter.acquire())

    asyncio.run(run())
    return asked, granted


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 5),
    window=st.sampled_from([0.5, 1.0, 60.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 7.0]), min_size=1, max_size=40),
)
def test_no_window_holds_more_than_the_limit_and_no_request_waits_needlessly(
    limit: int, window: float, gaps: list[float]
) -> None:
    asked, granted = _grants(limit, window, gaps)
    for i, start in enumerate(granted):
        # Brute force: requests granted in the `window` seconds ending at this one, itself included.
        in_window = [g for g in granted[: i + 1] if start - window < g <= start]
        assert len(in_window) <= limit
        # It waited only if, when asked, `limit` requests had started in the window before it.
        busy = [g for g in granted[:i] if asked[i] - window < g <= asked[i]]
        if len(busy) < limit:
            assert start == asked[i]
        else:
            assert start > asked[i]


def test_two_hundred_a_minute_then_the_next_waits_for_the_oldest_to_age_out() -> None:
    _, granted = _grants(200, 60.0, [0.1] * 201)
    assert granted[199] < 20.1
    assert granted[0] + 60.0 <= granted[200] <= granted[0] + 60.002
