"""A local Alpaca: the part of Alpaca's trading and market data APIs the adapter uses, on
127.0.0.1.

No machine here reaches Alpaca, so the adapter is tested (and can be demonstrated) against
this server, with the real `alpaca-py` SDK pointed at it through its URL overrides
(`TradingClient(url_override=...)`, `TradingStream(url_override=...)`,
`StockHistoricalDataClient(url_override=...)`). It speaks:

- REST, under `/v2`: `GET /account`, `GET /positions`, `GET /clock`, `GET /calendar` (start,
  end), `GET /assets/{symbol}`, `POST /orders`, `GET /orders` (status, after, until,
  direction, limit, symbols), `GET /orders/{id}`, `GET /orders:by_client_order_id`,
  `PATCH /orders/{id}` (replace), `DELETE /orders/{id}`, `DELETE /orders`;
- market data, under `/v2/stocks`: `GET /bars` (symbols, timeframe, start, end, limit,
  page_token: pages with `next_page_token`), `GET /trades/latest`, `GET /quotes/latest`
  (symbols; each request's `feed` is recorded);
- the `trade_updates` websocket stream at `/stream` (authenticate, listen, then events).

Payloads carry the fields, types and spellings of Alpaca's documented responses, as the SDK's
models (`Order`, `TradeAccount`, `Position`, `Clock`, `Calendar`, `Asset`, `TradeUpdate`,
`Bar`, `Trade`, `Quote`) parse them: trading amounts as decimal strings, market data prices
as JSON numbers, times as RFC 3339 in UTC (the calendar's as New York "HH:MM"), errors as
`{"code": ..., "message": ...}`.

The market is the test's to set: bars with `set_bars`, the latest trade from `set_price`
(at the moment it is set), the latest quote a cent either side of it unless `set_quote` says
otherwise, sessions from exchange-calendars (XNYS) unless `set_session` changes a day (the
clock follows the same sessions), assets for every symbol with a price or bars unless
`set_asset` says otherwise.

How orders fill is the test's to decide. In `auto` mode a market order is accepted, then
filled whole at the symbol's price a moment later (events `new`, `fill`); in `manual` mode it
waits for `fill()` (any number of partial fills), `cancel_at_broker()` or `expire()`. Other
order types (stop, limit) rest until cancelled or replaced. Alpaca's own refusals are
modelled where the adapter meets them: 401 without the keys, 403 for insufficient buying power
or shares, 422 for a duplicate `client_order_id` or an unknown symbol, 429 above 200 requests a
minute. Faults are injected with `fail_next` (the next requests answer 429 or 5xx) and
`drop_stream` (connections closed and refused; events meanwhile are lost, as Alpaca does not
replay them).

The server runs its own event loop on a thread, like a remote server would: nothing the
caller's loop does can stall it. Its state is guarded by one lock; the control methods
(`set_price`, `fill`, ...) are safe from any thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

RATE_LIMIT_PER_MINUTE = 200
OPEN_STATUSES = frozenset(
    {"new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
     "pending_replace", "held", "done_for_day", "stopped", "suspended", "calculated", "pending_review"}
)  # fmt: skip
CODE_FORBIDDEN = 40310000
CODE_UNPROCESSABLE = 40010001
CODE_NOT_CANCELABLE = 42210000
CODE_NOT_FOUND = 40410000
NEW_YORK = ZoneInfo("America/New_York")
MAX_BARS_PAGE = 10_000  # Alpaca's largest page of market data
DEFAULT_BARS_PAGE = 1_000
BAR_TIMEFRAMES = {"1Day": timedelta(days=1), "1Min": timedelta(minutes=1), "5Min": timedelta(minutes=5)}


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: object) -> Decimal:
    """A quantity or price the SDK sent (a JSON number or string), exactly as written."""
    return Decimal(str(value))


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    submitted_at: datetime
    updated_at: datetime
    status: str = "accepted"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_cost: Decimal = Decimal(0)  # sum of qty * price of the executions
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def filled_avg_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return (self.filled_cost / self.filled_qty).quantize(Decimal("0.0001"))

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.submitted_at),
            "updated_at": rfc3339(self.updated_at),
            "submitted_at": rfc3339(self.submitted_at),
            "filled_at": rfc3339(self.filled_at),
            "expired_at": rfc3339(self.expired_at),
            "canceled_at": rfc3339(self.canceled_at),
            "failed_at": rfc3339(self.failed_at),
            "replaced_at": rfc3339(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(self.qty),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": None if self.filled_avg_price is None else str(self.filled_avg_price),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "stop_price": None if self.stop_price is None else str(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
        }


@dataclass(frozen=True)
class FakeBar:
    """One bar as Alpaca keys it: `t` is when the bar starts (a daily bar: midnight New York)."""

    t: datetime
    o: Decimal
    h: Decimal
    l: Decimal
    c: Decimal
    v: int

    def to_json(self) -> dict:
        return {
            "t": rfc3339(self.t),
            "o": float(self.o),
            "h": float(self.h),
            "l": float(self.l),
            "c": float(self.c),
            "v": self.v,
            "n": max(1, self.v // 100),
            "vw": float((self.h + self.l + self.c) / 3),
        }


@functools.cache
def _xnys():
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS", start="2000-01-01", end="2030-12-31")


@functools.cache
def _xnys_sessions() -> dict[date, tuple[datetime, datetime]]:
    schedule = _xnys().schedule
    return {
        label.date(): (opens.to_pydatetime(), closes.to_pydatetime())
        for label, opens, closes in zip(schedule.index, schedule["open"], schedule["close"])
    }


@dataclass
class FakePosition:
    qty: Decimal
    cost: Decimal  # qty * average entry price
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class AlpacaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message}, status_code=self.status)


class FakeAlpaca:
    """The server's state and its control surface for tests and the demo."""

    def __init__(
        self,
        *,
        api_key: str = "fake-key",
        secret_key: str = "fake-secret",
        cash: Decimal = Decimal(100_000),
        now: Callable[[], datetime] | None = None,
        fill_mode: str = "auto",
    ) -> None:
        self.api_key, self.secret_key = api_key, secret_key
        self.account_id = str(uuid.uuid4())
        self.cash = cash
        self._now = now or (lambda: datetime.now(UTC))
        self.fill_mode = fill_mode
        self.prices: dict[str, Decimal] = {}
        self.priced_at: dict[str, datetime] = {}  # when each price was set: its trade's time
        self.quotes: dict[str, tuple[Decimal, Decimal, datetime]] = {}  # set_quote's (bid, ask, at)
        self.bars: dict[tuple[str, str], list[FakeBar]] = {}  # (symbol, timeframe) -> bars
        self.sessions: dict[date, tuple[datetime, datetime] | None] = {}  # set_session's days
        self.assets: dict[str, dict] = {}  # set_asset's fields
        self.clock_says: tuple[bool, datetime, datetime] | None = None  # set_clock's answer
        self.bars_page_limit = MAX_BARS_PAGE
        self.data_queries: list[tuple[str, dict[str, str]]] = []  # (path, params) of market data
        self.orders: dict[str, FakeOrder] = {}
        self.by_client_id: dict[str, str] = {}
        self.positions: dict[str, FakePosition] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self._faults: deque[int] = deque()
        self._recent: deque[float] = deque()  # monotonic times of requests in the last minute
        self.rate_limited = 0  # 429s the server's own limit gave (not injected ones)
        self.stream_up = True
        self.events: list[dict] = []  # every trade update emitted, delivered or not
        self._listeners: set[asyncio.Queue] = set()
        self._sockets: set[WebSocket] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.stream_url = ""

    # ---- running -------------------------------------------------------------------------

    def start(self) -> FakeAlpaca:
        # IPPROTO_TCP named, so the accepted connections say TCP and asyncio sets TCP_NODELAY on
        # them: without it a response's body waited for the client's delayed ACK of its headers
        # (Nagle), and every keep-alive GET took 44 ms instead of 2.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.stream_url = f"ws://127.0.0.1:{port}/stream"
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            ready.set()
            loop.run_until_complete(self._server.serve(sockets=[sock]))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-alpaca", daemon=True)
        self._thread.start()
        ready.wait()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Alpaca server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._call_in_loop(self._close_sockets)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/account", self._guarded(self._account), methods=["GET"]),
                Route("/v2/positions", self._guarded(self._positions), methods=["GET"]),
                Route("/v2/clock", self._guarded(self._clock), methods=["GET"]),
                Route("/v2/calendar", self._guarded(self._calendar), methods=["GET"]),
                Route("/v2/assets/{symbol}", self._guarded(self._asset), methods=["GET"]),
                Route("/v2/stocks/bars", self._guarded(self._bars), methods=["GET"]),
                Route("/v2/stocks/trades/latest", self._guarded(self._latest_trades), methods=["GET"]),
                Route("/v2/stocks/quotes/latest", self._guarded(self._latest_quotes), methods=["GET"]),
                Route(
                    "/v2/orders:by_client_order_id", self._guarded(self._order_by_client_id), methods=["GET"]
                ),
                Route("/v2/orders", self._guarded(self._orders), methods=["GET", "POST", "DELETE"]),
                Route(
                    "/v2/orders/{order_id}", self._guarded(self._order), methods=["GET", "PATCH", "DELETE"]
                ),
                WebSocketRoute("/stream", self._stream),
            ]
        )

    # ---- control (any thread) --------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """The symbol's price; a sell stop at or above it triggers and fills at it (a market
        order once triggered; the price is where it fills)."""
        with self.lock:
            self.prices[symbol] = Decimal(price)
            self.priced_at[symbol] = self._now()
            self.quotes.pop(symbol, None)
            for order in list(self.orders.values()):
                if (
                    order.open
                    and order.symbol == symbol
                    and order.type == "stop"
                    and order.side == "sell"
                    and self.prices[symbol] <= order.stop_price
                ):
                    self._execute(order, order.qty - order.filled_qty, self.prices[symbol])

    def set_quote(
        self, symbol: str, bid: Decimal | str, ask: Decimal | str, at: datetime | None = None
    ) -> None:
        """The symbol's latest quote (until its next `set_price`)."""
        with self.lock:
            self.quotes[symbol] = (Decimal(bid), Decimal(ask), at or self._now())

    def set_bars(self, symbol: str, timeframe: str, bars: list[FakeBar]) -> None:
        """The symbol's bars of `timeframe` (`1Day`, `1Min`, `5Min`), replacing any before."""
        if timeframe not in BAR_TIMEFRAMES:
            raise ValueError(f"the fake serves {', '.join(BAR_TIMEFRAMES)} bars, not {timeframe}")
        with self.lock:
            self.bars[(symbol, timeframe)] = sorted(bars, key=lambda b: b.t)

    def set_session(self, day: date, opens: str | None, closes: str | None = None) -> None:
        """Alpaca's session on `day`, New York "HH:MM" times (None: closed), whatever XNYS says."""
        with self.lock:
            if opens is None or closes is None:
                self.sessions[day] = None
            else:
                self.sessions[day] = (_new_york(day, opens), _new_york(day, closes))

    def set_clock(self, is_open: bool, next_open: datetime, next_close: datetime) -> None:
        """The clock's answer from now on, whatever the sessions say (a clock out of step with
        the calendar: a closing announced today, an error on Alpaca's side)."""
        with self.lock:
            self.clock_says = (is_open, next_open, next_close)

    def set_asset(self, symbol: str, **fields: object) -> None:
        """The asset's fields (`tradable=False`, `status="inactive"`...) over the defaults."""
        with self.lock:
            self.assets[symbol] = fields

    def fail_next(self, status: int, count: int = 1) -> None:
        """The next `count` REST requests answer `status` (429, 500, 503...) and do nothing."""
        with self.lock:
            self._faults.extend([status] * count)

    def order(self, client_order_id: str) -> FakeOrder:
        with self.lock:
            return self.orders[self.by_client_id[client_order_id]]

    def fill(self, client_order_id: str, qty: Decimal | str, price: Decimal | str | None = None) -> None:
        """One execution of `qty` at `price` (default: the symbol's price): `partial_fill` or `fill`."""
        with self.lock:
            order = self.order(client_order_id)
            self._execute(
                order, Decimal(qty), Decimal(price) if price is not None else self.prices[order.symbol]
            )

    def cancel_at_broker(self, client_order_id: str) -> None:
        """The order cancelled by Alpaca or by hand in its app (not by the adapter)."""
        with self.lock:
            order = self.order(client_order_id)
            self._close(order, "canceled")

    def expire(self, client_order_id: str) -> None:
        with self.lock:
            self._close(self.order(client_order_id), "expired")

    def trade_outside(
        self, symbol: str, side: str, qty: Decimal | str, price: Decimal | str | None = None
    ) -> FakeOrder:
        """A market order placed by hand in Alpaca's app (a client order id the engine never
        made), filled at once. A sale first cancels the symbol's open sell orders (a resting
        stop holds the shares), as the app's "close position" does."""
        with self.lock:
            if side == "sell":
                for order in list(self.orders.values()):
                    if order.open and order.symbol == symbol and order.side == "sell":
                        self._close(order, "canceled")
            order = self._submit(
                {"symbol": symbol, "qty": str(qty), "side": side, "type": "market",
                 "time_in_force": "day", "client_order_id": f"app-{uuid.uuid4()}"}
            )  # fmt: skip
            order.status = "new"
            self._execute(order, order.qty, Decimal(price) if price is not None else self.prices[symbol])
            return order

    def drop_stream(self) -> None:
        """Close every stream connection and refuse new ones until `restore_stream`."""
        with self.lock:
            self.stream_up = False
        self._call_in_loop(self._close_sockets)

    def restore_stream(self) -> None:
        with self.lock:
            self.stream_up = True

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for m, p, _ in self.requests
                if (method is None or m == method) and (path is None or p == path)
            )

    # ---- the order book ------------------------------------------------------------------------

    def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        if not order.open or qty <= 0 or order.filled_qty + qty > order.qty:
            raise ValueError(f"cannot fill {qty} of order {order.client_order_id} ({order.status})")
        now = self._now()
        order.filled_qty += qty
        order.filled_cost += qty * price
        order.updated_at = now
        done = order.filled_qty == order.qty
        order.status = "filled" if done else "partially_filled"
        if done:
            order.filled_at = now
        position = self.positions.setdefault(order.symbol, FakePosition(Decimal(0), Decimal(0)))
        if order.side == "buy":
            self.cash -= qty * price
            position.qty += qty
            position.cost += qty * price
        else:
            self.cash += qty * price
            average = position.cost / position.qty if position.qty else Decimal(0)
            position.qty -= qty
            position.cost -= qty * average
        if not position.qty:
            del self.positions[order.symbol]
        self._emit(
            "fill" if done else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=str(price),
            qty=str(qty),
            position_qty=str(position.qty if position.qty else 0),
        )

    def _close(self, order: FakeOrder, status: str) -> None:
        if not order.open:
            raise AlpacaError(422, CODE_NOT_CANCELABLE, f"order is not cancelable (status {order.status})")
        now = self._now()
        order.status, order.updated_at = status, now
        if status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        self._emit(status, order)

    def _emit(self, event: str, order: FakeOrder, **extra: str) -> None:
        message = {
            "stream": "trade_updates",
            "data": {"event": event, "timestamp": rfc3339(self._now()), "order": order.to_json(), **extra},
        }
        self.events.append(message)
        self._call_in_loop(self._deliver, json.dumps(message))

    def _deliver(self, text: str) -> None:
        for listener in self._listeners:
            listener.put_nowait(text)

    def _call_in_loop(self, callback: Callable, *args: object) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(callback, *args)

    def _close_sockets(self) -> None:
        for websocket in list(self._sockets):
            asyncio.ensure_future(_close_quietly(websocket))
        for listener in list(self._listeners):
            listener.put_nowait(None)

    def _submit(self, body: dict) -> FakeOrder:
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if client_order_id in self.by_client_id:
            raise AlpacaError(422, CODE_UNPROCESSABLE, "client_order_id must be unique")
        symbol = str(body.get("symbol", ""))
        if symbol not in self.prices:
            raise AlpacaError(422, CODE_UNPROCESSABLE, f'asset "{symbol}" not found')
        if body.get("qty") is None or _number(body["qty"]) <= 0:
            raise AlpacaError(422, CODE_UNPROCESSABLE, "qty must be > 0")
        qty, side, order_type = _number(body["qty"]), body.get("side"), body.get("type", "market")
        if side not in ("buy", "sell"):
            raise AlpacaError(422, CODE_UNPROCESSABLE, "invalid side")
        if order_type not in ("market", "limit", "stop"):
            raise AlpacaError(422, CODE_UNPROCESSABLE, f"invalid order type for this fake: {order_type}")
        if side == "buy" and order_type == "market":
            needed = qty * self.prices[symbol]
            if needed > self.buying_power():
                raise AlpacaError(403, CODE_FORBIDDEN, "insufficient buying power")
        if side == "sell":
            held = self.positions[symbol].qty if symbol in self.positions else Decimal(0)
            if qty > held - self._held_for_orders(symbol):
                raise AlpacaError(
                    403,
                    CODE_FORBIDDEN,
                    f"insufficient qty available for order (requested: {qty}, available: {held})",
                )
        now = self._now()
        order = FakeOrder(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            qty=qty,
            type=order_type,
            time_in_force=body.get("time_in_force", "day"),
            submitted_at=now,
            updated_at=now,
            limit_price=_number(body["limit_price"]) if body.get("limit_price") is not None else None,
            stop_price=_number(body["stop_price"]) if body.get("stop_price") is not None else None,
        )
        self.orders[order.id] = order
        self.by_client_id[client_order_id] = order.id
        return order

    def _held_for_orders(self, symbol: str) -> Decimal:
        """Shares promised to open sell orders (stops included), which Alpaca will not sell twice."""
        return sum(
            (
                o.qty - o.filled_qty
                for o in self.orders.values()
                if o.open and o.symbol == symbol and o.side == "sell"
            ),
            Decimal(0),
        )

    def buying_power(self) -> Decimal:
        return self.cash  # a cash account: no margin

    def _after_submit(self, order: FakeOrder) -> None:
        """What the exchange does next, outside the request: `new`, then (auto) the fill."""
        with self.lock:
            if order.status == "accepted":
                order.status = "new"
                self._emit("new", order)
            if self.fill_mode == "auto" and order.type == "market" and order.open:
                self._execute(order, order.qty - order.filled_qty, self.prices[order.symbol])

    # ---- REST -------------------------------------------------------------------------------

    def _guarded(self, handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            # The body is read first: the handlers change state under the lock without awaiting.
            body = await request.json() if request.method in ("POST", "PATCH") else {}
            with self.lock:
                response = self._refusal(request)
                if response is None:
                    try:
                        response = handler(request, body)
                    except AlpacaError as error:
                        response = error.response()
                self.requests.append((request.method, request.url.path, response.status_code))
            return response

        return endpoint

    def _refusal(self, request: Request) -> Response | None:
        if (
            request.headers.get("APCA-API-KEY-ID") != self.api_key
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return JSONResponse({"code": 40110000, "message": "request is not authorized"}, status_code=401)
        if self._faults:
            status = self._faults.popleft()
            message = "rate limit exceeded" if status == 429 else "internal server error"
            return JSONResponse({"code": status * 100_000, "message": message}, status_code=status)
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        if len(self._recent) >= RATE_LIMIT_PER_MINUTE:
            self.rate_limited += 1
            return JSONResponse({"code": 42910000, "message": "rate limit exceeded"}, status_code=429)
        self._recent.append(now)
        return None

    def _account(self, request: Request, body: dict) -> Response:
        market_value = sum(
            (p.qty * self.prices.get(s, Decimal(0)) for s, p in self.positions.items()), Decimal(0)
        )
        equity = self.cash + market_value
        return JSONResponse(
            {
                "id": self.account_id,
                "account_number": "PA" + self.account_id[:10].replace("-", "").upper(),
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "currency": "USD",
                "buying_power": str(self.buying_power()),
                "regt_buying_power": str(self.buying_power()),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": str(self.buying_power()),
                "cash": str(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": str(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T15:00:00Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": False,
                "equity": str(equity),
                "last_equity": str(equity),
                "long_market_value": str(market_value),
                "short_market_value": "0",
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }
        )

    def _positions(self, request: Request, body: dict) -> Response:
        rows = []
        for symbol, position in sorted(self.positions.items()):
            price = self.prices.get(symbol, Decimal(0))
            average = position.cost / position.qty
            value = position.qty * price
            rows.append(
                {
                    "asset_id": position.asset_id,
                    "symbol": symbol,
                    "exchange": "NASDAQ",
                    "asset_class": "us_equity",
                    "asset_marginable": False,
                    "avg_entry_price": str(average.quantize(Decimal("0.0001"))),
                    "qty": str(position.qty),
                    "qty_available": str(position.qty - self._held_for_orders(symbol)),
                    "side": "long",
                    "market_value": str(value),
                    "cost_basis": str(position.cost),
                    "unrealized_pl": str(value - position.cost),
                    "unrealized_plpc": str(
                        ((value - position.cost) / position.cost).quantize(Decimal("0.0001"))
                    ),
                    "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0",
                    "current_price": str(price),
                    "lastday_price": str(price),
                    "change_today": "0",
                }
            )
        return JSONResponse(rows)

    # ---- the market's sessions ------------------------------------------------------------

    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """(open, close) of `day` as this Alpaca has it."""
        if day in self.sessions:
            return self.sessions[day]
        return _xnys_sessions().get(day)

    def _clock(self, request: Request, body: dict) -> Response:
        now = self._now()
        today = now.astimezone(NEW_YORK).date()
        sessions = [s for s in (self.session(today + timedelta(days=d)) for d in range(-1, 15)) if s]
        is_open, next_open, next_close = self.clock_says or (
            any(opens <= now < closes for opens, closes in sessions),
            min(opens for opens, _ in sessions if opens > now),
            min(closes for _, closes in sessions if closes > now),
        )
        return JSONResponse(
            {
                "timestamp": rfc3339(now),
                "is_open": is_open,
                "next_open": rfc3339(next_open),
                "next_close": rfc3339(next_close),
            }
        )

    def _calendar(self, request: Request, body: dict) -> Response:
        start = date.fromisoformat(request.query_params.get("start", "1970-01-01"))
        end = date.fromisoformat(request.query_params.get("end", "2029-12-31"))
        days = []
        for offset in range((end - start).days + 1):
            day = start + timedelta(days=offset)
            times = self.session(day)
            if times is None:
                continue
            opens, closes = (t.astimezone(NEW_YORK) for t in times)
            days.append(
                {
                    "date": day.isoformat(),
                    "open": f"{opens:%H:%M}",
                    "close": f"{closes:%H:%M}",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": (day + timedelta(days=1)).isoformat(),
                }
            )
        return JSONResponse(days)

    def _asset(self, request: Request, body: dict) -> Response:
        symbol = request.path_params["symbol"]
        known = symbol in self.prices or any(s == symbol for s, _ in self.bars)
        if not known and symbol not in self.assets:
            raise AlpacaError(404, CODE_NOT_FOUND, "asset not found")
        return JSONResponse(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-alpaca/{symbol}")),
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": symbol,
                "name": f"{symbol} Inc. Common Stock",
                "status": "active",
                "tradable": True,
                "marginable": True,
                "shortable": True,
                "easy_to_borrow": True,
                "fractionable": True,
                "maintenance_margin_requirement": 30,
                "attributes": [],
                **self.assets.get(symbol, {}),
            }
        )

    # ---- market data --------------------------------------------------------------------------

    def _data_query(self, request: Request) -> tuple[list[str], dict[str, str]]:
        params = dict(request.query_params)
        self.data_queries.append((request.url.path, params))
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            raise AlpacaError(400, 40010001, "symbols is required")
        return symbols, params

    def _bars(self, request: Request, body: dict) -> Response:
        symbols, params = self._data_query(request)
        timeframe = params.get("timeframe", "")
        if timeframe not in BAR_TIMEFRAMES:
            raise AlpacaError(400, 40010001, f"invalid timeframe: {timeframe}")
        start, end = _moment(params.get("start")), _moment(params.get("end")) or self._now()
        # Alpaca's order: by symbol, then by time; a page may end inside one symbol's bars.
        chosen = [
            (symbol, bar)
            for symbol in sorted(set(symbols))
            for bar in self.bars.get((symbol, timeframe), [])
            if (start is None or bar.t >= start) and bar.t <= end
        ]
        offset = int(base64.b64decode(params["page_token"]).decode()) if params.get("page_token") else 0
        limit = min(int(params.get("limit") or DEFAULT_BARS_PAGE), self.bars_page_limit)
        page: dict[str, list[dict]] = {}
        for symbol, bar in chosen[offset : offset + limit]:
            page.setdefault(symbol, []).append(bar.to_json())
        more = offset + limit < len(chosen)
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return JSONResponse({"bars": page, "next_page_token": token})

    def _latest_trades(self, request: Request, body: dict) -> Response:
        symbols, _ = self._data_query(request)
        trades = {
            symbol: {
                "t": rfc3339(self.priced_at[symbol]),
                "x": "V",
                "p": float(self.prices[symbol]),
                "s": 100,
                "c": ["@"],
                "i": 52983525029461,
                "z": "C",
            }
            for symbol in symbols
            if symbol in self.prices
        }
        return JSONResponse({"trades": trades})

    def _latest_quotes(self, request: Request, body: dict) -> Response:
        symbols, _ = self._data_query(request)
        quotes = {}
        cent = Decimal("0.01")
        for symbol in symbols:
            if symbol in self.quotes:
                bid, ask, at = self.quotes[symbol]
            elif symbol in self.prices:
                bid, ask, at = self.prices[symbol] - cent, self.prices[symbol] + cent, self.priced_at[symbol]
            else:
                continue
            quotes[symbol] = {
                "t": rfc3339(at),
                "ax": "V",
                "ap": float(ask),
                "as": 2,
                "bx": "V",
                "bp": float(bid),
                "bs": 3,
                "c": ["R"],
                "z": "C",
            }
        return JSONResponse({"quotes": quotes})

    def _orders(self, request: Request, body: dict) -> Response:
        if request.method == "POST":
            order = self._submit(body)
            # The exchange answers after the request: the caller sees `accepted` first.
            self.loop.call_later(0.005, self._after_submit, order)
            return JSONResponse(order.to_json())
        if request.method == "DELETE":
            answers = []
            for order in list(self.orders.values()):
                if order.open:
                    self._close(order, "canceled")
                    answers.append({"id": order.id, "status": 200, "body": order.to_json()})
            return JSONResponse(answers, status_code=207)
        return JSONResponse([o.to_json() for o in self._listed(request.query_params)])

    def _listed(self, params) -> list[FakeOrder]:
        status = params.get("status", "open")
        after = _moment(params.get("after"))
        until = _moment(params.get("until"))
        symbols = {s for s in params.get("symbols", "").split(",") if s}
        chosen = [
            o
            for o in self.orders.values()
            if (status == "all" or (status == "open") == o.open)
            and (after is None or o.submitted_at > after)
            and (until is None or o.submitted_at <= until)
            and (not symbols or o.symbol in symbols)
        ]
        chosen.sort(key=lambda o: o.submitted_at, reverse=params.get("direction", "desc") == "desc")
        limit = min(int(params.get("limit") or 50), 500)
        return chosen[:limit]

    def _order_by_client_id(self, request: Request, body: dict) -> Response:
        order_id = self.by_client_id.get(request.query_params.get("client_order_id", ""))
        if order_id is None:
            raise AlpacaError(404, 40410000, "order not found")
        return JSONResponse(self.orders[order_id].to_json())

    def _order(self, request: Request, body: dict) -> Response:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            raise AlpacaError(404, 40410000, "order not found")
        if request.method == "DELETE":
            self._close(order, "canceled")
            return Response(status_code=204)
        if request.method == "PATCH":
            return JSONResponse(self._replace(order, body).to_json())
        return JSONResponse(order.to_json())

    def _replace(self, order: FakeOrder, body: dict) -> FakeOrder:
        if not order.open or order.type == "market":
            raise AlpacaError(422, CODE_NOT_CANCELABLE, "order is not replaceable")
        now = self._now()
        order.status, order.replaced_at, order.updated_at = "replaced", now, now
        replacement = FakeOrder(
            id=str(uuid.uuid4()),
            client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
            symbol=order.symbol,
            side=order.side,
            qty=_number(body["qty"]) if body.get("qty") is not None else order.qty,
            type=order.type,
            time_in_force=body.get("time_in_force", order.time_in_force),
            submitted_at=now,
            updated_at=now,
            status="new",
            limit_price=_number(body["limit_price"])
            if body.get("limit_price") is not None
            else order.limit_price,
            stop_price=_number(body["stop_price"])
            if body.get("stop_price") is not None
            else order.stop_price,
            replaces=order.id,
        )
        if replacement.client_order_id in self.by_client_id:
            raise AlpacaError(422, CODE_UNPROCESSABLE, "client_order_id must be unique")
        order.replaced_by = replacement.id
        self.orders[replacement.id] = replacement
        self.by_client_id[replacement.client_order_id] = replacement.id
        self._emit("replaced", order)
        return replacement

    # ---- the trade_updates stream -----------------------------------------------------------

    async def _stream(self, websocket: WebSocket) -> None:
        if not self.stream_up:
            await websocket.close(code=1013)  # refused: the handshake fails, as when Alpaca is away
            return
        await websocket.accept()
        self._sockets.add(websocket)
        listener: asyncio.Queue | None = None
        try:
            auth = json.loads(await websocket.receive_text())
            data = auth.get("data", {})
            authorized = (data.get("key_id"), data.get("secret_key")) == (self.api_key, self.secret_key)
            await websocket.send_text(
                json.dumps(
                    {
                        "stream": "authorization",
                        "data": {
                            "action": "authenticate",
                            "status": "authorized" if authorized else "unauthorized",
                        },
                    }
                )
            )
            if not authorized:
                return
            listen = json.loads(await websocket.receive_text())
            streams = listen.get("data", {}).get("streams", [])
            await websocket.send_text(json.dumps({"stream": "listening", "data": {"streams": streams}}))
            if "trade_updates" not in streams:
                return
            listener = asyncio.Queue()
            self._listeners.add(listener)
            while self.stream_up:
                text = await listener.get()
                if text is None:
                    break
                await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, json.JSONDecodeError):
            pass
        finally:
            if listener is not None:
                self._listeners.discard(listener)
            self._sockets.discard(websocket)
            await _close_quietly(websocket)


async def _close_quietly(websocket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code=1011)


def _new_york(day: date, hours_minutes: str) -> datetime:
    hours, minutes = (int(part) for part in hours_minutes.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=NEW_YORK).astimezone(UTC)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
