"""The backtester (seed task 19, issue 8): history replayed through the engine's own decision core.

Public API (for the CLI and the HTTP API):

- `BacktestConfig` (`.parse(**raw)` for loose input, `BacktestConfigError` with `.field`),
  `FillModel`, `CommissionModel`, `SignalSource`;
- `Backtester(BacktestData).run(config, progress=None) -> BacktestResult` (pure, no I/O);
- `sample_backtest_data(start, end, tickers)` for the bundled sample;
- in `services.trading.backtest.run_store`: `load_backtest_data`, `create_backtest_run`,
  `run_backtest_job`, `save_backtest`, `fetch_backtest`.
"""

from services.trading.backtest.backtester import BacktestData, Backtester, sample_backtest_data
from services.trading.backtest.config import (
    BacktestConfig,
    BacktestConfigError,
    CommissionModel,
    FillModel,
    SignalSource,
)
from services.trading.backtest.market import DataGap, MarketData
from services.trading.backtest.results import (
    BacktestEvent,
    BacktestResult,
    BacktestTrade,
    DecisionRecord,
    Metrics,
)

__all__ = [
    "BacktestConfig",
    "BacktestConfigError",
    "BacktestData",
    "BacktestEvent",
    "BacktestResult",
    "BacktestTrade",
    "Backtester",
    "CommissionModel",
    "DataGap",
    "DecisionRecord",
    "FillModel",
    "MarketData",
    "Metrics",
    "SignalSource",
    "sample_backtest_data",
]
