"""The adapter's calls to Alpaca's trading API (and, in `market_data.py`, its market data API),
through the official SDK, with our own rules for failure: one shared rate limiter, retries
with back-off and jitter for what may pass (429, 5xx, a dropped connection, a call that
hangs), and a refusal (any other 4xx) turned into a `BrokerRejected` carrying Alpaca's own
reason, never retried.

The SDK's client is synchronous (`requests`); each call runs in a worker thread so the event
loop keeps serving the stream and the queue. The SDK's built-in retry (three 3-second sleeps on
429 and 504, inside the call) is switched off: it would retry outside the limiter and without
jitter. Amounts leave as the SDK's floats only when the float says exactly the same decimal.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

import requests
import structlog
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import QueryOrderStatus, TimeInForce
from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)

from services.alpaca_broker.rate_limit import SlidingWindowLimiter
from services.shared.orders import OrderJob

log = structlog.get_logger(__name__)
T = TypeVar("T")
MAX_LISTED_ORDERS = 500  # Alpaca's largest page of `GET /orders`


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6  # then the call fails as "broker unavailable" and the caller waits its turn
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    call_timeout_seconds: float = 20.0


class BrokerRejected(Exception):
    """Alpaca refused the request (a 4xx other than 429); retrying would get the same answer."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, error: APIError) -> BrokerRejected:
        text = str(error)
        try:
            body = json.loads(text)
            return cls(error.status_code or 0, body.get("code"), str(body.get("message", text)))
        except (ValueError, AttributeError):
            return cls(error.status_code or 0, None, text[:300])

    @property
    def reason(self) -> str:
        """The broker's reason, as recorded on the order and shown to the owner."""
        code = f", code {self.code}" if self.code else ""
        return f"alpaca: {self.message} (HTTP {self.status}{code})"

    @property
    def duplicate(self) -> bool:
        """Alpaca's answer to a second order with the same `client_order_id`."""
        return self.status == 422 and "client_order_id" in self.message and "unique" in self.message

    @property
    def not_found(self) -> bool:
        return self.status == 404


class BrokerUnavailable(ConnectionError):
    """Alpaca did not answer usefully after every retry (an `OSError`: a server being down,
    which the broker's loop waits out without counting it against the job)."""


def _exact(amount: Decimal) -> float:
    """A price as the SDK's float, only if the float says exactly the same decimal."""
    value = float(amount)
    if Decimal(repr(value)) != amount:
        raise BrokerRejected(0, None, f"price {amount} cannot be sent exactly")
    return value


def _transient_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


class AlpacaCalls:
    """One SDK client's calls under our rules: the account's limiter, retries, refusals."""

    def __init__(
        self,
        client: RESTClient,
        limiter: SlidingWindowLimiter,
        policy: RetryPolicy = RetryPolicy(),
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        client._retry = 0  # the SDK's own retry loop: see the module's docstring
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.retries = 0  # calls retried so far (for tests and logs)

    def backoff(self, attempt: int) -> float:
        """Exponential with equal jitter: at least half the step, so waits still grow, and a
        random half, so adapters hit by one storm do not come back in step."""
        step = min(self.policy.max_delay_seconds, self.policy.first_delay_seconds * 2 ** (attempt - 1))
        return step / 2 + self._rng.uniform(0, step / 2)

    async def call(self, what: str, function: Callable[..., T], *args: object) -> T:
        last = "no attempt"
        for attempt in range(1, self.policy.attempts + 1):
            await self.limiter.acquire()
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(function, *args), self.policy.call_timeout_seconds
                )
            except APIError as error:
                if not _transient_status(error.status_code):
                    raise BrokerRejected.of(error) from None
                last = f"HTTP {error.status_code}: {str(error)[:200]}"
            except (requests.RequestException, OSError, TimeoutError) as error:
                last = f"{type(error).__name__}: {error}"
            if attempt < self.policy.attempts:
                self.retries += 1
                delay = self.backoff(attempt)
                log.warning(
                    "alpaca call failed; retrying",
                    call=what,
                    attempt=attempt,
                    error=last,
                    wait=round(delay, 2),
                )
                await self._sleep(delay)
        raise BrokerUnavailable(f"alpaca {what} failed {self.policy.attempts} times; last: {last}")


class AlpacaApi(AlpacaCalls):
    client: TradingClient

    async def account(self) -> TradeAccount:
        return await self.call("get account", self.client.get_account)

    async def positions(self) -> list[Position]:
        return await self.call("list positions", self.client.get_all_positions)

    async def clock(self) -> Clock:
        return await self.call("get clock", self.client.get_clock)

    async def calendar(self, start: date, end: date) -> list[Calendar]:
        """The market's sessions from `start` to `end`, both included."""
        return await self.call(
            "get calendar", self.client.get_calendar, GetCalendarRequest(start=start, end=end)
        )

    async def asset(self, symbol: str) -> Asset:
        return await self.call("get asset", self.client.get_asset, symbol)

    async def submit_market(self, job: OrderJob) -> Order:
        quantity = float(job.quantity)
        if Decimal(repr(quantity)) != job.quantity:
            # The SDK sends quantities as floats; one that would arrive changed is not sent.
            raise BrokerRejected(0, None, f"quantity {job.quantity} cannot be sent exactly")
        request = MarketOrderRequest(
            symbol=job.ticker,
            qty=quantity,
            side=AlpacaSide.BUY if job.side.value == "buy" else AlpacaSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=job.client_order_id,
        )
        return await self.call("submit order", self.client.submit_order, request)

    async def submit_stop(
        self, client_order_id: str, ticker: str, quantity: int, stop_price: Decimal
    ) -> Order:
        """A protective sell stop resting at Alpaca until cancelled (GTC): whole shares only,
        as Alpaca takes no fractional quantity in a GTC order."""
        request = StopOrderRequest(
            symbol=ticker,
            qty=quantity,
            side=AlpacaSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=_exact(stop_price),
            client_order_id=client_order_id,
        )
        return await self.call("submit stop", self.client.submit_order, request)

    async def replace_stop(
        self, order_id: str, client_order_id: str, quantity: int, stop_price: Decimal
    ) -> Order:
        request = ReplaceOrderRequest(
            qty=quantity, stop_price=_exact(stop_price), client_order_id=client_order_id
        )
        return await self.call("replace order", self.client.replace_order_by_id, order_id, request)

    async def cancel(self, order_id: str) -> None:
        await self.call("cancel order", self.client.cancel_order_by_id, order_id)

    async def order_by_id(self, order_id: str) -> Order:
        return await self.call("get order", self.client.get_order_by_id, order_id)

    async def open_orders(self) -> list[Order]:
        """Every order still working at Alpaca, whenever it was placed (a resting stop is old)."""
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=MAX_LISTED_ORDERS, nested=False)
        return await self.call("list open orders", self.client.get_orders, request)

    async def order_by_client_id(self, client_order_id: str) -> Order:
        return await self.call("get order", self.client.get_order_by_client_id, client_order_id)

    async def orders_since(self, after: datetime) -> list[Order]:
        """Every order submitted after `after`, oldest first (one page of 500: a catch-up that
        needs more looks the rest up one by one)."""
        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL, after=after, direction=Sort.ASC, limit=MAX_LISTED_ORDERS
        )
        return await self.call("list orders", self.client.get_orders, request)
