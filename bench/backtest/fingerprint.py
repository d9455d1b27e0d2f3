"""Fingerprints of the bench workload's results (issue 16): a speed-up must not change one trade.

Runs `run.py`'s universes (the SMA 10/30 crossover, moderate tier, 2003-2012) and hashes,
with SHA-256 over exact text (Decimals as their own strings, instants in ISO-8601, floats by
repr), every part of each result: decisions (instant, recommendation, ticker, act/skip, the
check and reason, quantity), fills, closed trades, open positions, the equity curve, the
reserve ledger, events, tax, final tier and metrics.

Variants: bar-range timing at 1, 10 and 100 tickers; live timing (the replay's instants) at 10
and 100; micro-trading on at 10 (every third recommendation made a 1-day signal, an intraday
ATR given per ticker) with both timings.

Run: `python bench/backtest/fingerprint.py [--save FILE] [--check FILE] [--only NAME ...]`.
`--check` exits 1 naming each part that differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import END, START, build_universe

from services.shared.schemas import RiskTierName
from services.trading.backtest import BacktestConfig, BacktestData, Backtester, FillModel
from services.trading.backtest.config import FillTiming
from services.trading.backtest.results import BacktestResult
from services.trading.backtest.signals import momentum_recommendations
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.micro_trading import MicroTradingSettings

# name -> (tickers, fill timing, micro-trading on)
VARIANTS = {
    "bar_range_1": (1, FillTiming.BAR_RANGE, False),
    "bar_range_10": (10, FillTiming.BAR_RANGE, False),
    "bar_range_100": (100, FillTiming.BAR_RANGE, False),
    "live_10": (10, FillTiming.LIVE, False),
    "live_100": (100, FillTiming.LIVE, False),
    "micro_bar_range_10": (10, FillTiming.BAR_RANGE, True),
    "micro_live_10": (10, FillTiming.LIVE, True),
}


def text(value: object) -> str:
    """Exact, unambiguous text of a result value."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, Decimal):
        return f"D({value})"
    if isinstance(value, float):
        return f"f({value!r})"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ",".join(f"{f.name}={text(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(text(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(text(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{text(k)}:{text(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no exact text for {type(value).__name__}")


def parts(result: BacktestResult) -> dict[str, object]:
    return {
        "status": (result.status, result.error),
        "decisions": result.decisions,
        "fills": result.fills,
        "trades": result.trades,
        "open_positions": result.open_positions,
        "equity_curve": result.equity_curve,
        "reserve_ledger": result.reserve_ledger,
        "reserve_balance": result.reserve_balance,
        "events": result.events,
        "tax": result.tax,
        "final_risk_tier": result.final_risk_tier,
        "metrics": result.metrics,
        "counts": (result.bars, result.sessions),
    }


def fingerprint(name: str) -> dict[str, object]:
    n, timing, micro = VARIANTS[name]
    market, _ = build_universe(n)
    recs = momentum_recommendations(market)
    data = BacktestData(market, recs)
    settings = EngineSettings(enabled=True, risk_tier=RiskTierName.MODERATE)
    if micro:
        # Every third signal made a 1-day one (a micro-trade candidate); the intraday ATR a
        # micro-trade's stop needs, given per ticker as a run is given it.
        recs = [replace(r, trend_window="1d") if r.id % 3 == 0 else r for r in recs]
        atr = {t: Decimal("0.5") + Decimal(i % 7) / 4 for i, t in enumerate(market.tickers)}
        data = BacktestData(market, recs, intraday_atr=atr)
        settings = replace(settings, micro=MicroTradingSettings(enabled=True))
    config = BacktestConfig(
        START,
        END,
        Decimal(100_000),
        RiskTierName.MODERATE,
        signals="momentum",
        fill=FillModel(timing=timing),
        settings=settings,
    )
    started = time.process_time()
    result = Backtester(data).run(config)
    cpu = time.process_time() - started
    hashes = {k: hashlib.sha256(text(v).encode()).hexdigest() for k, v in parts(result).items()}
    whole = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
    return {
        "hashes": hashes,
        "all": whole,
        "trades": len(result.trades),
        "decisions": len(result.decisions),
        "fills": len(result.fills),
        "cpu_s": round(cpu, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write the fingerprints to this JSON file")
    parser.add_argument("--check", type=Path, help="compare with fingerprints saved earlier")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run only these variants")
    args = parser.parse_args()
    names = args.only or list(VARIANTS)
    expected = json.loads(args.check.read_text()) if args.check else {}
    found, failed = {}, []
    for name in names:
        print_ = fingerprint(name)
        found[name] = print_
        verdict = ""
        if name in expected:
            differ = [k for k, h in print_["hashes"].items() if expected[name]["hashes"].get(k) != h]
            verdict = "same" if not differ else "DIFFERENT: " + ", ".join(differ)
            if differ:
                failed.append(name)
        print(
            f"{name:<20} {print_['all'][:16]} trades {print_['trades']:>5} decisions "
            f"{print_['decisions']:>5} fills {print_['fills']:>5} cpu {print_['cpu_s']:>6.3f}s {verdict}",
            flush=True,
        )
    if args.save:
        args.save.write_text(json.dumps(found, indent=1, sort_keys=True))
    if failed:
        print(f"fingerprints differ: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
