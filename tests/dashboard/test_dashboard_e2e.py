"""The built dashboard in a real headless Chromium against the real app (seed task 23, docs/contracts.md
section 7): `frontend/e2e/dashboard.e2e.mjs` checks the page against the API's own answers.

The state is made by the live stack: the sample market and momentum signal replayed through
the engine and paper broker (tests/dashboard/state.py). The app is the production one,
`uvicorn services.trading.app:app`, on a free loopback port, serving `frontend/dist`.

Needs Debian's `chromium` and `chromium-driver` (`./stonks test` installs them when run as
root) and the built dashboard (`./stonks` builds it). Missing either fails the test: a
browser test that skips is a test nobody runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.shared.ports import free_port
from tests.dashboard.state import build_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
SCRIPT = FRONTEND / "e2e" / "dashboard.e2e.mjs"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "dashboard-e2e-token-0123456789abcdef"
SCREENSHOT_DIR = Path(os.environ.get("STONKS_DASHBOARD_SCREENSHOT_DIR", ROOT / ".data" / "dashboard-e2e"))


def _require_tools() -> str:
    problems = []
    if not CHROMIUM.exists():
        problems.append(
            f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver "
            "(./stonks test does this when run as root)"
        )
    if not (FRONTEND / "dist" / "index.html").exists():
        problems.append(
            "frontend/dist is not built: cd frontend && npm ci && npm run build (./stonks does this)"
        )
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        problems.append("frontend/node_modules/playwright-core is missing: cd frontend && npm ci")
    node = shutil.which("node")
    if node is None:
        problems.append("node is not on PATH: install Node.js 20.19+ (or 22.12+)")
    if problems:
        pytest.fail("the dashboard's browser test cannot run:\n  " + "\n  ".join(problems), pytrace=False)
    return node  # type: ignore[return-value]


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the app exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the app did not answer {url} within {timeout:.0f} s")


@pytest.fixture
def node() -> str:
    """Checked before the (slow) state is built: a missing tool fails at once, saying how."""
    return _require_tools()


@pytest.fixture
def app_server(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """`uvicorn services.trading.app:app` on a free loopback port, against the test database;
    the engine loop runs elsewhere (here: nowhere), so the state stays what the replay made."""
    port = free_port()
    env = {
        **os.environ,
        "STONKS_DATABASE_URL": database_url,
        "STONKS_REDIS_URL": redis_url,
        "STONKS_API_TOKEN": TOKEN,
        "STONKS_API_RUN_ENGINE": "false",
        "STONKS_API_HOST": "127.0.0.1",
        "STONKS_API_PORT": str(port),
        "STONKS_DATA_DIR": str(tmp_path / "data"),
        "STONKS_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "app.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.trading.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health", server)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
async def replayed(database_url: str, redis_url: str, redis_client) -> None:
    summary = await build_state(database_url, redis_url)
    assert summary.decisions > 0 and summary.trades > 0, summary


@pytest.mark.timeout(600)
async def test_dashboard_in_chromium(node: str, replayed: None, app_server: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOT_DIR / "dashboard.png"
    env = {**os.environ, "DASHBOARD_URL": app_server, "API_TOKEN": TOKEN, "SCREENSHOT_PATH": str(screenshot)}
    # Blocking on purpose: nothing else runs on this loop while the browser drives the app,
    # which is another process.
    result = subprocess.run(
        [node, str(SCRIPT)], cwd=FRONTEND, env=env, capture_output=True, text=True, timeout=300
    )
    print(result.stdout)
    assert result.returncode == 0, f"dashboard e2e failed:\n{result.stdout}\n{result.stderr}"
    assert screenshot.exists()
