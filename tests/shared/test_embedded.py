"""The private servers: started once per data directory, reused, stopped cleanly, and never
doubled when two processes start them at the same moment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from services.shared.embedded import EmbeddedServers

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
    starters = [subprocess.Popen([sys.executable, "-c", START_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                                 text=True) for _ in range(2)]
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
