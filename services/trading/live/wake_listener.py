"""The engine's instant wake-up: LISTEN for new recommendations on a pooled connection of its
own, and listen again on a new one whenever that connection dies (issue 12, defect 4).

A PostgreSQL restart or a terminated backend ends a LISTEN without a word to the loop: the
engine would fall back to its polling interval for good. The loss is noticed by asyncpg's
termination callback and, at each full tick, by re-issuing the LISTEN on the connection (a
no-op that needs a live, listening connection). Listening again pauses longer after each
failed attempt. While it is not listening, decisions wait for the poll and /ready says
degraded (`listening`, `problem`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)
RELISTEN_FIRST_SECONDS = 0.5
RELISTEN_MAX_SECONDS = 10.0
CHECK_TIMEOUT_SECONDS = 5.0  # a connection that does not answer in this time is treated as dead
CLOSE_TIMEOUT_SECONDS = 5.0


class WakeListener:
    """Sets `wake` on every NOTIFY of `channel`, for as long as it runs, across lost connections."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: str,
        wake: asyncio.Event,
        *,
        first_delay: float = RELISTEN_FIRST_SECONDS,
        max_delay: float = RELISTEN_MAX_SECONDS,
    ) -> None:
        self.pool = pool
        self.channel = channel
        self.wake = wake
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.problem: str | None = "not listening yet"  # why not listening, for /ready
        self._connection: Any = None  # a pool's connection proxy
        self._lost = asyncio.Event()  # replaced with each connection: set when that one dies
        self._check_due = asyncio.Event()
        self._missed = False
        self._task: asyncio.Task | None = None

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._lost.is_set()

    async def start(self) -> None:
        """Listen now if PostgreSQL answers, then keep listening in the background."""
        await self._listen()
        self._task = asyncio.create_task(self._keep(), name="wake-listener")

    def check(self) -> None:
        """Called at each full tick: a connection killed while idle may not have said so yet."""
        self._check_due.set()

    def missed_notifications(self) -> bool:
        """True once after each time it listens again: what was inserted while no one
        listened notified no one, so a decision pass is due at once."""
        missed, self._missed = self._missed, False
        return missed

    async def close(self) -> None:
        """Stop listening and give the connection back clean; never raises (a dead connection
        at shutdown is expected after a PostgreSQL restart, not an error)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        connection, self._connection = self._connection, None
        self.problem = "stopped"
        if connection is not None:
            await self._release(connection)

    # -- keeping it alive ------------------------------------------------------------------

    async def _keep(self) -> None:
        delay = self.first_delay
        while True:
            if self.listening:
                await self._until_lost()
                continue
            if await self._listen():
                delay = self.first_delay
                self._missed = True
                self.wake.set()
                log.warning("listening again for new recommendations; deciding what came in meanwhile")
                continue
            log.warning(
                "cannot LISTEN for new recommendations; decisions wait for the poll",
                error=self.problem,
                retry_in_seconds=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def _until_lost(self) -> None:
        """Return once the current connection is known dead, having given it back."""
        lost = self._lost
        while not lost.is_set():
            self._check_due.clear()
            waits = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(self._check_due.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if not lost.is_set() and self._check_due.is_set():
                await self._check_alive()
        dead, self._connection = self._connection, None
        log.warning(
            "the LISTEN connection died; decisions wait for the poll until it listens again",
            error=self.problem,
        )
        if dead is not None:
            await _drop(self.pool, dead)

    async def _check_alive(self) -> None:
        try:
            # LISTEN again is a no-op for a listening session: one round trip proving both.
            await self._connection.execute(self._listen_sql(), timeout=CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - whatever the failure, this connection is done
            self.problem = f"the LISTEN connection stopped answering: {type(exc).__name__}: {exc}"
            self._lost.set()

    async def _listen(self) -> bool:
        try:
            connection = await self.pool.acquire(timeout=CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - PostgreSQL down or restarting: try again later
            self.problem = f"no connection to LISTEN on: {type(exc).__name__}: {exc}"
            return False
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(self._on_terminated)
            await connection.add_listener(self.channel, self._on_notify)
        except asyncio.CancelledError:  # closed meanwhile: the connection must not leak
            await _drop(self.pool, connection)
            raise
        except Exception as exc:  # noqa: BLE001 - as above
            self.problem = f"LISTEN failed: {type(exc).__name__}: {exc}"
            await _drop(self.pool, connection)
            return False
        self._connection, self._lost, self.problem = connection, lost, None
        return True

    def _on_notify(self, *_: object) -> None:
        self.wake.set()

    def _on_terminated(self, connection: object) -> None:
        if connection is self._connection:  # not a connection this listener gave up earlier
            self.problem = "the LISTEN connection was closed (PostgreSQL restarted or ended the session)"
            self._lost.set()

    def _listen_sql(self) -> str:
        return f'LISTEN "{self.channel}"'

    async def _release(self, connection: Any) -> None:
        """Back to the pool without the LISTEN (the pool keeps session state: services/shared/db.py)."""
        try:
            connection.remove_termination_listener(self._on_terminated)
            await connection.reset(timeout=CLOSE_TIMEOUT_SECONDS)  # UNLISTEN, and its callbacks removed
            await self.pool.release(connection)
        except Exception as exc:  # noqa: BLE001 - a dead connection cannot be cleaned, only dropped
            log.info(
                "the LISTEN connection could not be cleaned; dropping it",
                error=f"{type(exc).__name__}: {exc}",
            )
            await _drop(self.pool, connection)


async def _drop(pool: asyncpg.Pool, connection: Any) -> None:
    """End a connection that is dead or half-set-up and let the pool replace it. Either step
    fails harmlessly when the pool took the dead connection back already."""
    with contextlib.suppress(Exception):
        connection.terminate()
    with contextlib.suppress(Exception):
        await pool.release(connection)
