"""Background backtests and optimizations of this process (`POST /api/trading/backtest`,
`POST /api/trading/optimizations`): started as asyncio tasks, counted against a limit, and
cancelled (their runs marked failed, or interrupted) when the server stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

import structlog

log = structlog.get_logger(__name__)


class TooManyBacktests(RuntimeError):
    pass


class BacktestJobs:
    def __init__(self, limit: int = 2, what: str = "backtest") -> None:
        self.limit = limit
        self.what = what  # what a job is, in the messages
        self._tasks: dict[UUID, asyncio.Task] = {}

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    def reserve(self) -> None:
        """Raise `TooManyBacktests` when the limit is reached (checked before the run is recorded)."""
        if self.running >= self.limit:
            raise TooManyBacktests(f"{self.running} {self.what}s are running; at most {self.limit} at once")

    async def reserve_after_tidying(
        self, finished: Callable[[UUID], Awaitable[bool]], wait_seconds: float = 60
    ) -> None:
        """As `reserve`, but a job whose run is already recorded as over and is only tidying up
        (an optimization shutting its Ray down takes seconds) is waited for, not counted: the
        page already says "completed", and the owner's next launch must not be refused for it."""
        if self.running >= self.limit:
            tidying = [
                task
                for job_id, task in list(self._tasks.items())
                if not task.done() and await finished(job_id)
            ]
            if tidying:
                await asyncio.wait(tidying, timeout=wait_seconds)
        self.reserve()

    def start(self, backtest_id: UUID, job: Awaitable[None]) -> None:
        task = asyncio.create_task(job, name=f"backtest-{backtest_id}")
        self._tasks[backtest_id] = task  # a strong reference: asyncio keeps only weak ones
        task.add_done_callback(lambda _: self._tasks.pop(backtest_id, None))

    async def stop(self, mark_failed: Callable[[UUID, str], Awaitable[None]]) -> None:
        """Cancel unfinished runs and record them failed, so none stays `running` forever."""
        pending = {backtest_id: task for backtest_id, task in self._tasks.items() if not task.done()}
        for task in pending.values():
            task.cancel()
        await asyncio.gather(*pending.values(), return_exceptions=True)
        for backtest_id in pending:
            try:
                await mark_failed(backtest_id, f"the server stopped before the {self.what} finished")
            except Exception as exc:  # noqa: BLE001 - shutting down: say so and go on
                log.warning(
                    "could not mark an interrupted backtest failed",
                    backtest_id=str(backtest_id),
                    error=str(exc),
                )
