"""Settings come from the environment and bad values stop start-up with a clear message."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.shared.config import ConfigError, load_config
from services.shared.schemas import RiskTierName, RiskTierRule


def test_defaults_are_the_spec_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("STONKS_"):
            monkeypatch.delenv(name)
    config = load_config()
    trading = config.trading
    assert (trading.enabled, trading.risk_tier) == (False, RiskTierName.MODERATE)
    assert trading.reserve_siphon_pct == Decimal("0.20")
    assert (trading.polling_interval_seconds, trading.stop_loss_check_interval_seconds) == (30, 300)
    assert (trading.absolute_position_cap, trading.active_pool_minimum) == (Decimal(2500), Decimal(100))
    assert (trading.micro_trading_enabled, trading.micro_trading_max_daily) == (False, 10)
    assert (
        trading.risk_tier_rule,
        trading.risk_tier_min_trades,
        trading.risk_tier_min_sessions,
        trading.risk_tier_recovery_sessions,
    ) == (RiskTierRule.GUARDED, 10, 5, 20)
    assert config.database_url is None and config.redis_url is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STONKS_TRADING_RISK_TIER", "aggressive")
    monkeypatch.setenv("STONKS_TRADING_RESERVE_SIPHON_PCT", "0.35")
    monkeypatch.setenv("STONKS_DATABASE_URL", "postgresql://db.example/stonks")
    monkeypatch.setenv("STONKS_TRADING_RISK_TIER_RULE", "plan")
    config = load_config()
    assert config.trading.risk_tier_rule is RiskTierRule.PLAN
    assert config.trading.risk_tier is RiskTierName.AGGRESSIVE
    assert config.trading.reserve_siphon_pct == Decimal("0.35")
    assert config.database_url == "postgresql://db.example/stonks"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STONKS_TRADING_RESERVE_SIPHON_PCT", "1.5", "less than or equal to 1"),
        ("STONKS_TRADING_RESERVE_SIPHON_PCT", "lots", "decimal"),
        ("STONKS_TRADING_RISK_TIER", "yolo", "conservative"),
        ("STONKS_TRADING_MAX_OPEN_POSITIONS", "0", "greater than or equal to 1"),
        ("STONKS_TRADING_RISK_TIER_RULE", "literal", "guarded"),
        ("STONKS_TRADING_RISK_TIER_MIN_TRADES", "0", "greater than or equal to 1"),
        ("STONKS_API_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_bad_values_name_the_variable_and_the_allowed_range(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as excinfo:
        load_config()
    message = str(excinfo.value)
    assert variable in message and repr(value) in message and expected in message


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        config.trading.enabled = True  # type: ignore[misc]


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("STONKS_"):
            monkeypatch.delenv(name)


def test_the_broker_is_the_paper_broker_on_paper_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch)
    config = load_config()
    assert (config.broker.value, config.trading_mode.value, config.live_trading_opt_in) == (
        "paper",
        "paper",
        False,
    )


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"STONKS_TRADING_MODE": "live", "STONKS_BROKER": "paper"}, "needs STONKS_BROKER=alpaca"),
        (
            {"STONKS_TRADING_MODE": "live", "STONKS_BROKER": "alpaca", "STONKS_ALPACA_API_KEY": "k",
             "STONKS_ALPACA_SECRET_KEY": "s"},
            "STONKS_LIVE_TRADING_OPT_IN=true",
        ),
        ({"STONKS_BROKER": "alpaca"}, "needs STONKS_ALPACA_API_KEY"),
    ],
)  # fmt: skip
def test_live_trading_and_alpaca_need_their_settings(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    _clean(monkeypatch)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_config()


def test_alpaca_keys_come_from_the_secrets_directory_and_never_show(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    _clean(monkeypatch)
    (tmp_path / "stonks_alpaca_api_key").write_text("PKTESTKEY")
    (tmp_path / "stonks_alpaca_secret_key").write_text("very-secret")
    monkeypatch.setenv("STONKS_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STONKS_BROKER", "alpaca")
    monkeypatch.setenv("STONKS_TRADING_MODE", "live")
    monkeypatch.setenv("STONKS_LIVE_TRADING_OPT_IN", "true")
    config = load_config()
    assert config.alpaca_secret_key.get_secret_value() == "very-secret"
    assert "very-secret" not in repr(config) and "PKTESTKEY" not in repr(config)
