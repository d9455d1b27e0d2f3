"""The SDK's `trade_updates` stream, told to say when it (re)connects.

`TradingStream` reconnects by itself after a dropped connection, with exponential back-off
and jitter (alpaca-py 0.44). What it cannot know is that events sent while it was away are
lost: Alpaca does not replay them. So each successful connection (the first and every
reconnection) sets `connected`, and the broker answers by catching up: it lists the orders
since the last event it saw and applies whatever it missed.

This hooks `_start_ws`, a private method of the SDK's class; alpaca-py is pinned to 0.44.x in
pyproject.toml, and the stream-drop integration test fails if the hook stops being called.
"""

from __future__ import annotations

import asyncio

from alpaca.trading.stream import TradingStream


class ReconnectingTradeStream(TradingStream):
    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool,
        url_override: str | None = None,
        min_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        super().__init__(api_key, secret_key, paper=paper, url_override=url_override)
        self._reconnect_min_backoff = min_backoff_seconds
        self._reconnect_max_backoff = max_backoff_seconds
        self.connected = asyncio.Event()
        self.connections = 0

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self.connections += 1
        self.connected.set()

    async def run(self) -> None:  # type: ignore[override] - the SDK's `run` owns an event loop
        """Consume until `stop_ws` (the SDK's loop, inside the caller's event loop)."""
        await self._run_forever()
