"""The engine process a soak drives, kills and restarts: `stonks-trading run`'s own wiring
(`main_job.run_live`: engine, paper broker, notifications, API) on a clock shifted into a
past trading session, so the soak trades whatever the time of day it runs.

    python -m services.trading.soak.engine_process --clock-offset-seconds N [--api-port P]

Servers and trading settings come from the environment, as for `run`. With
`--tracemalloc-dir`, Python allocations are traced and the growth since the warm-up is
written there, grouped by traceback (see heap.py): how the soak tells a leak from a cache.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from services.shared.config import load_config
from services.shared.logging import configure_logging
from services.trading.live import main_job
from services.trading.soak import heap


@dataclass(frozen=True, slots=True)
class ShiftedClock:
    """Wall time moved by a fixed offset: it runs at the real pace, from the instant the soak
    chose. Every process of one soak uses the same offset, so they agree on "now"."""

    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def _no_api(_: main_job.RuntimeParts) -> None:
    await asyncio.Event().wait()


async def _run(args: argparse.Namespace) -> None:
    config = load_config()
    configure_logging(config.log_level)
    if args.api_port:
        from services.trading.cli import _api_server  # the very server `run` starts

        serve_api = _api_server(config, args.api_port)
    else:
        serve_api = _no_api
    tracer = None
    if args.tracemalloc_dir is not None:
        tracer = asyncio.create_task(
            heap.watch_growth(
                args.tracemalloc_dir, args.tracemalloc_warmup_seconds, args.tracemalloc_every_seconds
            )
        )
    try:
        await main_job.run_live(
            config,
            paper_broker=True,
            capital=Decimal(args.capital),
            serve_api=serve_api,
            clock=ShiftedClock(timedelta(seconds=args.clock_offset_seconds)),
        )
    finally:
        if tracer is not None:
            tracer.cancel()
            await asyncio.gather(tracer, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock-offset-seconds", type=float, required=True)
    parser.add_argument("--capital", default="10000")
    parser.add_argument("--api-port", type=int, default=0, help="0: no API server")
    parser.add_argument("--tracemalloc-dir", type=Path)
    parser.add_argument("--tracemalloc-warmup-seconds", type=float, default=120)
    parser.add_argument("--tracemalloc-every-seconds", type=float, default=120)
    args = parser.parse_args(argv)
    if args.tracemalloc_dir is not None:
        heap.start_tracing()  # before the engine allocates anything worth following
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
