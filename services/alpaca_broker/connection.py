"""Alpaca's clients built from the settings, and the account as the owner should see it.

Paper mode talks to Alpaca's paper endpoints, live mode to its live ones (the SDK's `paper`
flag); market data is the same for both. `STONKS_ALPACA_URL`, `STONKS_ALPACA_STREAM_URL` and
`STONKS_ALPACA_DATA_URL` point elsewhere (a proxy, the local fake server). The keys are read
here and handed to the SDK only: they are `SecretStr` in the settings and never appear in a
log line or an error message of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from services.alpaca_broker.api import AlpacaApi, RetryPolicy
from services.alpaca_broker.broker import AlpacaBroker
from services.alpaca_broker.market_data import AlpacaDataApi, AlpacaPriceFeed
from services.alpaca_broker.outcomes import decimal_of
from services.alpaca_broker.rate_limit import SlidingWindowLimiter
from services.alpaca_broker.stream import ReconnectingTradeStream
from services.shared.config import AppConfig, BrokerName, ConfigError, broker_problems
from services.shared.schemas import TradingMode

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account_id: str
    account_number: str
    status: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    trading_blocked: bool


def _keys(config: AppConfig) -> tuple[str, str]:
    problems = broker_problems(config)
    if config.broker is not BrokerName.ALPACA:
        problems.append("STONKS_BROKER is not alpaca")
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return config.alpaca_api_key.get_secret_value(), config.alpaca_secret_key.get_secret_value()


def open_api(config: AppConfig, *, policy: RetryPolicy = RetryPolicy()) -> AlpacaApi:
    key, secret = _keys(config)
    client = TradingClient(
        key, secret, paper=config.trading_mode is TradingMode.PAPER, url_override=config.alpaca_url
    )
    # One limiter per process: every REST call of this account goes through this one api.
    return AlpacaApi(client, SlidingWindowLimiter(), policy)


def open_price_feed(config: AppConfig, pool, clock, api: AlpacaApi) -> AlpacaPriceFeed:
    """Alpaca's market data into the price tables, on `api`'s limiter: one budget per account."""
    key, secret = _keys(config)
    client = StockHistoricalDataClient(key, secret, url_override=config.alpaca_data_url)
    data = AlpacaDataApi(client, api.limiter, api.policy, feed=DataFeed(config.alpaca_data_feed.value))
    return AlpacaPriceFeed(pool, clock, data, api)


def open_stream(config: AppConfig, **backoff: float) -> ReconnectingTradeStream:
    key, secret = _keys(config)
    return ReconnectingTradeStream(
        key,
        secret,
        paper=config.trading_mode is TradingMode.PAPER,
        url_override=config.alpaca_stream_url,
        **backoff,
    )


async def account_summary(api: AlpacaApi) -> AccountSummary:
    account = await api.account()
    return AccountSummary(
        account_id=str(account.id),
        account_number=account.account_number,
        status=getattr(account.status, "value", str(account.status)),
        equity=decimal_of(account.equity) or Decimal(0),
        cash=decimal_of(account.cash) or Decimal(0),
        buying_power=decimal_of(account.buying_power) or Decimal(0),
        trading_blocked=bool(account.trading_blocked or account.account_blocked),
    )


async def announce(api: AlpacaApi, mode: TradingMode) -> AccountSummary:
    """Say loudly, at start, which account the engine trades (live: a warning, every start)."""
    summary = await account_summary(api)
    fields = {
        "mode": mode.value,
        "account_id": summary.account_id,
        "account_number": summary.account_number,
        "equity": str(summary.equity),
        "buying_power": str(summary.buying_power),
        "cash": str(summary.cash),
    }
    if mode is TradingMode.LIVE:
        log.warning("LIVE TRADING: the engine places real orders in this Alpaca account", **fields)
    else:
        log.info("trading on Alpaca's paper account", **fields)
    if summary.trading_blocked:
        log.error("Alpaca says this account cannot trade now (trading or account blocked)", **fields)
    return summary


def open_broker(
    config: AppConfig, pool, redis, clock, *, order_signer, api: AlpacaApi | None = None, notifier=None
) -> AlpacaBroker:
    """The Alpaca broker on the engine's queues, for `stonks run` with `STONKS_BROKER=alpaca`;
    `api`: the one the caller already checked the account with (one limiter per process);
    `notifier`: where reconciliation's findings go (the engine's notification service)."""
    return AlpacaBroker.on_redis(
        pool,
        redis,
        clock,
        api or open_api(config),
        open_stream(config),
        order_signer=order_signer,
        mode=config.trading_mode,
        reconcile_seconds=config.reconcile_minutes * 60,
        notifier=notifier,
        resting_stops=True,
    )
