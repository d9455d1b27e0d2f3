"""Settings read from the environment, validated once at start-up (seed task 1.4).

`AppConfig` says where the servers are; `TradingConfig` holds the engine's deployment
settings (`STONKS_TRADING_*`). A bad value stops start-up with `ConfigError`, whose message
names the environment variable and the allowed range, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.shared.schemas import RiskTierName, RiskTierRule, TradingMode

APP_NAME = "stonks-trading"
TRADING_ENV_PREFIX = "STONKS_TRADING_"
APP_ENV_PREFIX = "STONKS_"
HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
SECRETS_DIR_VARIABLE = "STONKS_SECRETS_DIR"


class BrokerName(StrEnum):
    PAPER = "paper"  # the built-in paper broker (services/paper_broker)
    ALPACA = "alpaca"  # Alpaca, through alpaca-py (services/alpaca_broker)


class AlpacaDataFeed(StrEnum):
    IEX = "iex"  # the Investors Exchange alone: free with every Alpaca account
    SIP = "sip"  # every US exchange (the consolidated tape): a paid market data subscription


class ConfigError(ValueError):
    """A setting in the environment is invalid; the message is meant for the owner."""


class TradingConfig(BaseSettings):
    """Engine settings. Defaults are docs/contracts.md section 5."""

    model_config = SettingsConfigDict(env_prefix=TRADING_ENV_PREFIX, frozen=True, extra="ignore")

    enabled: bool = False
    risk_tier: RiskTierName = RiskTierName.MODERATE
    reserve_siphon_pct: Decimal = Field(Decimal("0.20"), ge=0, le=1)
    polling_interval_seconds: float = Field(30.0, gt=0, le=3600)
    stop_loss_check_interval_seconds: float = Field(300.0, gt=0, le=3600)
    fast_stop_loss_interval_seconds: float = Field(60.0, gt=0, le=3600)
    gradual_entry_tranches: int = Field(3, ge=1, le=20)
    gradual_entry_interval_minutes: int = Field(30, ge=1, le=390)
    gradual_entry_threshold_dollars: Decimal = Field(Decimal("30"), ge=0)
    absolute_position_cap: Decimal = Field(Decimal("2500"), gt=0)
    active_pool_minimum: Decimal = Field(Decimal("100"), ge=0)
    emergency_drawdown_threshold_pct: Decimal = Field(Decimal("0.20"), gt=0, le=1)
    reserve_high_water_pct: Decimal = Field(Decimal("0.30"), gt=0, le=1)
    max_open_positions: int = Field(10, ge=1, le=500)
    fractional_shares: bool = False
    micro_trading_enabled: bool = False
    micro_trading_interval_seconds: float = Field(60.0, gt=0, le=3600)
    micro_trading_allocation_cap_pct: Decimal = Field(Decimal("0.03"), gt=0, le=1)
    micro_trading_max_daily: int = Field(10, ge=0, le=1000)
    micro_trading_max_hold_minutes: int = Field(120, ge=1, le=390)
    # The risk-tier autopilot (docs/contracts.md section 6.9, decisions.md *Risk-tier autopilot*).
    risk_tier_rule: RiskTierRule = RiskTierRule.GUARDED
    risk_tier_min_trades: int = Field(10, ge=1, le=1000)
    risk_tier_min_sessions: int = Field(5, ge=0, le=1000)
    risk_tier_recovery_sessions: int = Field(20, ge=0, le=1000)
    sns_topic_arn: str | None = None
    sns_phone_number: str | None = None
    gmail_sender: str | None = None
    gmail_recipient: str | None = None


class AppConfig(BaseSettings):
    """Where the engine's servers and data live. Unset URLs mean: start private servers."""

    model_config = SettingsConfigDict(env_prefix=APP_ENV_PREFIX, frozen=True, extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir(APP_NAME)))
    api_token: str | None = None
    # Key of the order jobs' signatures, shared with a broker that runs as its own process
    # (`run --external-broker`, Kubernetes). Unset: generated and kept in the data directory.
    order_signing_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    # Names the API answers to besides localhost and api_host (a reverse proxy's, a Service's),
    # comma-separated. A request naming another Host is refused: DNS rebinding would otherwise
    # let any web page read the API through a name that resolves to this machine.
    api_allowed_hosts: str = ""
    log_level: str = "INFO"
    # Which broker consumes the order queue, and whether it trades real money
    # (docs/decisions.md *Alpaca broker*). Live needs all three: `trading_mode=live`,
    # `broker=alpaca` and `live_trading_opt_in=true`; `check_broker_settings` refuses the rest.
    broker: BrokerName = BrokerName.PAPER
    trading_mode: TradingMode = TradingMode.PAPER
    live_trading_opt_in: bool = False
    # Alpaca's keys: from the environment or files in STONKS_SECRETS_DIR only, never logged.
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    # Where Alpaca is, when not at its own addresses (a proxy, the local fake server of the tests).
    alpaca_url: str | None = None
    alpaca_stream_url: str | None = None
    alpaca_data_url: str | None = None
    # Which of Alpaca's feeds prices come from with STONKS_BROKER=alpaca (docs/decisions.md
    # *Live prices from Alpaca*).
    alpaca_data_feed: AlpacaDataFeed = AlpacaDataFeed.IEX
    # How often the Alpaca broker reconciles the account with PostgreSQL (and at its start).
    reconcile_minutes: float = Field(5.0, gt=0)
    trading: TradingConfig = Field(default_factory=TradingConfig)
    # Parameter search (`stonks optimize`, issue 16): an existing Ray cluster to run the trials
    # on (`ray://host:10001` or `host:6379`); unset, a local Ray on `ray_num_cpus` cores (all).
    ray_address: str | None = None
    ray_num_cpus: int | None = Field(None, ge=1, le=4096)

    @field_validator("api_allowed_hosts")
    @classmethod
    def _host_names(cls, value: str) -> str:
        names = [name.strip().lower().removesuffix(".") for name in value.split(",") if name.strip()]
        bad = [name for name in names if not (HOST_NAME.match(name) or _is_ip_address(name))]
        if bad:
            raise ValueError(
                f"not host names: {', '.join(map(repr, bad))} (names only, comma-separated: "
                "no scheme, port or path)"
            )
        return ",".join(names)

    @property
    def allowed_host_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.api_allowed_hosts.split(",") if name)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def _describe(error: dict, prefix: str) -> str:
    field = ".".join(str(part) for part in error["loc"])
    variable = prefix + field.upper()
    return f"{variable}={error.get('input')!r}: {error['msg']}"


def load_config() -> AppConfig:
    """Read and validate every setting; raise `ConfigError` naming each bad variable."""
    problems: list[str] = []
    trading: TradingConfig | None = None
    try:
        trading = TradingConfig()
    except ValidationError as exc:
        problems += [_describe(e, TRADING_ENV_PREFIX) for e in exc.errors()]
    try:
        # A secret may also be a file named after its variable in STONKS_SECRETS_DIR
        # (`stonks_order_signing_key`), as a Kubernetes secret mounted as files gives it.
        app = AppConfig(
            trading=trading or TradingConfig.model_construct(),
            _secrets_dir=os.environ.get(SECRETS_DIR_VARIABLE) or None,
        )
    except ValidationError as exc:
        problems += [_describe(e, APP_ENV_PREFIX) for e in exc.errors()]
    if not problems:
        problems += broker_problems(app)
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return app


def broker_problems(config: AppConfig) -> list[str]:
    """What stops the chosen broker and mode from starting; live trading only when opted into."""
    problems = []
    if config.trading_mode is TradingMode.LIVE:
        if config.broker is not BrokerName.ALPACA:
            problems.append(
                "STONKS_TRADING_MODE=live needs STONKS_BROKER=alpaca (the paper broker only pretends)"
            )
        if not config.live_trading_opt_in:
            problems.append(
                "STONKS_TRADING_MODE=live trades real money: set STONKS_LIVE_TRADING_OPT_IN=true to confirm"
            )
    if config.broker is BrokerName.ALPACA and (
        config.alpaca_api_key is None or config.alpaca_secret_key is None
    ):
        problems.append(
            "STONKS_BROKER=alpaca needs STONKS_ALPACA_API_KEY and STONKS_ALPACA_SECRET_KEY "
            "(or files of those names in STONKS_SECRETS_DIR)"
        )
    return problems
