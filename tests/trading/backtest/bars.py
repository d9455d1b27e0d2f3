"""Tiny hand-made markets for the backtester's example tests.

Every market starts with 20 warm-up sessions of flat bars (open = close, high = close + 1,
low = close - 1), so the true range is exactly 2 and ATR(14) is exactly 2: with the moderate
tier's 2 x ATR, a position bought at 100 has its stop at 96 and its take-profit at 108.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np

from services.shared.schemas import RiskTierName
from services.trading.backtest import (
    BacktestConfig,
    BacktestData,
    Backtester,
    CommissionModel,
    FillModel,
    MarketData,
)
from services.trading.backtest.market import xnys_sessions
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.gradual_entry import GradualEntrySettings
from services.trading.core.models import Recommendation
from services.trading.core.risk_tier_controller import RiskTierSettings
from services.trading.core.trading_window import session_times

WARMUP = 20
SESSIONS = xnys_sessions(date(2024, 1, 2), date(2024, 3, 28))
NO_TRANCHES = GradualEntrySettings(tranche_count=1)
NO_COMMISSION = CommissionModel()


def flat(price: float, n: int = WARMUP) -> list[tuple[float, float, float, float]]:
    return [(price, price + 1, price - 1, price)] * n


def market(
    series: dict[str, list[tuple[float, float, float, float]]], sectors: dict[str, str] | None = None
) -> MarketData:
    """Bars per ticker, one tuple (open, high, low, close) per session from SESSIONS[0]."""
    n = max(len(bars) for bars in series.values())
    arrays = [np.full((len(series), n), np.nan) for _ in range(4)]
    for row, bars in enumerate(series.values()):
        for i, bar in enumerate(bars):
            for field, value in zip(arrays, bar):
                field[row, i] = value
    return MarketData(
        list(series),
        SESSIONS[:n],
        *arrays,
        sectors=sectors or {t: f"Sector {i}" for i, t in enumerate(series)},
    )


def rec(
    rec_id: int, ticker: str, session: int, action: str = "buy", confidence: float = 0.65
) -> Recommendation:
    """A recommendation stamped at the close of SESSIONS[session]."""
    close = session_times(SESSIONS[session])[1]
    return Recommendation(rec_id, ticker, action, confidence, "paper_eligible", "5d", "hand-made", close)


def run(
    data_market: MarketData,
    recs: list[Recommendation],
    *,
    tier: RiskTierName = RiskTierName.MODERATE,
    gradual: GradualEntrySettings = NO_TRANCHES,
    slippage: str = "0",
    capital: str = "10000",
    commission: CommissionModel = NO_COMMISSION,
    tier_rules: RiskTierSettings | None = None,
    **config,
):
    end = data_market.sessions[-1]
    settings = EngineSettings(
        enabled=True, risk_tier=tier, gradual=gradual, tier_rules=tier_rules or RiskTierSettings()
    )
    cfg = BacktestConfig(
        SESSIONS[WARMUP],
        end,
        Decimal(capital),
        tier,
        fill=FillModel(slippage_bps=Decimal(slippage), commission=commission),
        settings=settings,
        **config,
    )
    return Backtester(BacktestData(data_market, recs)).run(cfg)


def D(value: str | float) -> Decimal:
    return Decimal(str(value))
