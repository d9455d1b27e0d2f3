"""`stonks broker check`: what the broker says about the account, read-only.

It reads the account, the market clock, the positions and the open orders, and changes
nothing: a safe first command after putting the keys in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from services.alpaca_broker.api import AlpacaApi
from services.alpaca_broker.connection import AccountSummary, account_summary
from services.shared.schemas import TradingMode


@dataclass(frozen=True, slots=True)
class BrokerCheck:
    mode: TradingMode
    account: AccountSummary
    market_open: bool
    next_open: str
    next_close: str
    positions: int
    open_orders: int

    def rows(self) -> list[tuple[str, str]]:
        a = self.account
        return [
            ("mode", self.mode.value + (" (REAL MONEY)" if self.mode is TradingMode.LIVE else "")),
            ("account id", a.account_id),
            ("account number", a.account_number),
            ("status", a.status + (" - trading blocked" if a.trading_blocked else "")),
            ("equity", f"${a.equity:,.2f}"),
            ("cash", f"${a.cash:,.2f}"),
            ("buying power", f"${a.buying_power:,.2f}"),
            ("market", "open" if self.market_open else f"closed (opens {self.next_open})"),
            ("next close", self.next_close),
            ("positions", str(self.positions)),
            ("open orders", str(self.open_orders)),
        ]


async def check(api: AlpacaApi, mode: TradingMode) -> BrokerCheck:
    account = await account_summary(api)
    clock = await api.clock()
    positions = await api.positions()
    orders = await api.call(
        "list open orders", api.client.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
    )
    return BrokerCheck(
        mode=mode,
        account=account,
        market_open=clock.is_open,
        next_open=clock.next_open.isoformat(),
        next_close=clock.next_close.isoformat(),
        positions=len(positions),
        open_orders=len(orders),
    )
