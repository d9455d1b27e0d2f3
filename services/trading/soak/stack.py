"""The stack a soak runs and hurts: private PostgreSQL and Valkey in the soak's own directory
(never the owner's servers: the soak kills them), and the engine process, started, killed
with SIGKILL and started again as a service manager would.

Each fault is one event, awaited to its end (the server or process is back before the next),
so stopping the soak between faults never leaves a server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from services.shared.embedded import EmbeddedServerError, EmbeddedServers, ServerUrls

KILL_ENGINE = "kill-engine"
REDIS_RESTART = "redis-restart"
REDIS_KILL = "redis-kill"
POSTGRES_RESTART = "postgres-restart"
POSTGRES_KILL = "postgres-kill"
MALFORMED = "malformed"
EVENT_FAULTS = (KILL_ENGINE, REDIS_RESTART, REDIS_KILL, POSTGRES_RESTART, POSTGRES_KILL)
ALL_FAULTS = (*EVENT_FAULTS, MALFORMED)
ENGINE_MODULE = "services.trading.soak.engine_process"
STOP_TIMEOUT_SECONDS = 30.0
RESTART_ATTEMPTS = 30


@dataclass(frozen=True, slots=True)
class FaultEvent:
    at_seconds: float
    kind: str
    down_seconds: float
    note: str = ""
    back_at_seconds: float = 0.0  # the server or process is back (restarted) from here


@dataclass(frozen=True, slots=True)
class EngineExit:
    """The engine process ended without being told to: a crash the soak found."""

    at_seconds: float
    pid: int
    returncode: int


class EngineProcess:
    """One engine process at a time, its output appended to one log across restarts."""

    def __init__(
        self,
        arguments: list[str],
        environment: dict[str, str],
        log_path: Path,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.arguments = arguments
        self.stop_timeout = stop_timeout
        self.environment = environment
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        # Held while the soak itself kills or stops the process, so the watchdog does not
        # count that as a crash or start a second one.
        self.lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    async def start(self) -> int:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                ENGINE_MODULE,
                *self.arguments,
                env=self.environment,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self.process.pid

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def terminate(self) -> bool:
        """SIGTERM, as `run` is stopped; True if it stopped in time and without an error
        (else it is killed)."""
        if self.process is None or self.process.returncode is not None:
            return False
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), self.stop_timeout) == 0
        except TimeoutError:
            await self.kill()
            return False

    def exited(self) -> int | None:
        """The return code if the process ended (by itself or not), else None."""
        return None if self.process is None else self.process.returncode


class SoakStack:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers = EmbeddedServers(directory)
        self.urls: ServerUrls | None = None
        self.started_at = time.monotonic()

    def mark_start(self) -> None:
        """Times of faults and memory samples count from here: the start of the load."""
        self.started_at = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    async def start_servers(self) -> ServerUrls:
        self.urls = await asyncio.to_thread(self.servers.ensure_running)
        return self.urls

    async def stop_servers(self) -> None:
        await asyncio.to_thread(self.servers.stop)

    async def inject(self, kind: str, engine: EngineProcess, down_seconds: float) -> FaultEvent:
        at = self.elapsed()
        if kind == KILL_ENGINE:
            async with engine.lock:
                pid = engine.pid
                await engine.kill()
                await asyncio.sleep(down_seconds)
                await engine.start()
            return FaultEvent(at, kind, down_seconds, f"SIGKILL to pid {pid}", self.elapsed())
        if kind in (REDIS_RESTART, REDIS_KILL):
            note = await asyncio.to_thread(self._valkey_down, kind == REDIS_KILL)
        elif kind in (POSTGRES_RESTART, POSTGRES_KILL):
            note = await asyncio.to_thread(self._postgres_down, kind == POSTGRES_KILL)
        else:
            raise ValueError(f"unknown fault {kind!r}")
        await asyncio.sleep(down_seconds)
        await self._restart_servers()
        return FaultEvent(at, kind, down_seconds, note, self.elapsed())

    def _valkey_down(self, kill: bool) -> str:
        valkey = self.servers.valkey
        if not kill:
            valkey.stop()
            return "SHUTDOWN SAVE"
        process = valkey._process()
        if process is None:
            return "was not running"
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
        return f"SIGKILL to pid {process.pid}"

    def _postgres_down(self, kill: bool) -> str:
        postgres = self.servers.postgres
        if not kill:
            postgres.stop()
            return "pg_ctl stop -m fast"
        pid = int((postgres.pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        return f"SIGKILL to postmaster pid {pid}"

    async def _restart_servers(self) -> None:
        """Start whatever is down; PostgreSQL may refuse while the killed postmaster's backends
        still hold its shared memory, so it is tried again for a while."""
        for attempt in range(RESTART_ATTEMPTS):
            try:
                await self.start_servers()
                return
            except (EmbeddedServerError, OSError, subprocess.SubprocessError) as exc:
                if attempt == RESTART_ATTEMPTS - 1:
                    raise EmbeddedServerError(f"a server did not come back after a fault: {exc}") from exc
                await asyncio.sleep(1)


def _wait_gone(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=STOP_TIMEOUT_SECONDS)
