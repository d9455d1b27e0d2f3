"""The backtester of seed task 19.1, at the path the seed gives it. It is a small package,
`services/trading/backtest/`, one module per concept; this module re-exports its public API."""

from services.trading.backtest import (  # noqa: F401
    BacktestConfig,
    BacktestConfigError,
    BacktestData,
    Backtester,
    BacktestResult,
    BacktestTrade,
    CommissionModel,
    FillModel,
    SignalSource,
    sample_backtest_data,
)
