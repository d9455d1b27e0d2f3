"""The dashboard's nginx.conf (seed task 22.3): /trading/ proxies to the trading engine's
Service, every other path falls back to the single-page app.

The config is checked by a real nginx (`nginx -t`, then serving requests) inside a private
mount and network namespace: there `trading-engine` resolves to 127.0.0.1 through a
bind-mounted /etc/hosts, a small HTTP server stands in for the engine on port 8000, and the
dashboard's root is a temporary directory. The file under test is included unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "frontend" / "nginx.conf"
VALUES = ROOT / "infra" / "helm" / "stonks-oracle" / "values.yaml"
DASHBOARD_ROOT = Path("/usr/share/nginx/html")

# Runs inside `unshare --mount --net`: nothing here touches the machine's network or files.
NAMESPACE_SCRIPT = r'''
import json, subprocess, sys, threading, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

conf, work = Path(sys.argv[1]), Path(sys.argv[2])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
(work / "hosts").write_text("127.0.0.1 localhost\n127.0.0.1 trading-engine\n")
(work / "html").mkdir()
(work / "html" / "index.html").write_text("<html>dashboard</html>")
subprocess.run(["mount", "--bind", str(work / "hosts"), "/etc/hosts"], check=True)
subprocess.run(["mount", "--bind", str(work / "html"), "/usr/share/nginx/html"], check=True)
(work / "wrapper.conf").write_text(f"""
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    include {conf};
}}
""")
seen = []

class Engine(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        seen.append({"method": self.command, "path": self.path, "body": body,
                     "headers": {k.lower(): v for k, v in self.headers.items()}})
        payload = json.dumps({"from": "engine"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    do_GET = do_POST = _answer
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 8000), Engine)
threading.Thread(target=server.serve_forever, daemon=True).start()
nginx = ["nginx", "-p", str(work), "-c", str(work / "wrapper.conf")]
check = subprocess.run(nginx + ["-t"], capture_output=True, text=True)
result = {"check_rc": check.returncode, "check_output": check.stderr, "responses": {}, "seen": seen}
if check.returncode == 0:
    subprocess.run(nginx, check=True)
    try:
        def fetch(name, path, data=None, headers=None):
            request = urllib.request.Request("http://127.0.0.1" + path, data=data, headers=headers or {})
            for _ in range(50):
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        result["responses"][name] = {"status": response.status, "body": response.read().decode()}
                        return
                except urllib.error.URLError as exc:
                    if isinstance(exc, urllib.error.HTTPError):
                        result["responses"][name] = {"status": exc.code, "body": exc.read().decode()}
                        return
                    time.sleep(0.1)
        fetch("status", "/trading/api/trading/status?limit=5")
        fetch("pause", "/trading/api/trading/pause", data=b'{"reason":"test"}',
              headers={"Authorization": "Bearer secret-token", "Content-Type": "application/json"})
        fetch("spa_route", "/positions/AAPL")
        fetch("index", "/")
    finally:
        subprocess.run(nginx + ["-s", "stop"])
server.shutdown()
print(json.dumps(result))
'''


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private mount and network namespace"
    for tool in ("unshare", "nginx", "ip", "mount"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` is not installed (nginx: apt-get install nginx-light)"
    if not DASHBOARD_ROOT.is_dir():
        return f"{DASHBOARD_ROOT} is missing (installed with nginx)"
    return None


def test_trading_location_proxies_to_the_engine_service_named_in_the_chart() -> None:
    text = NGINX_CONF.read_text()
    assert re.search(r"location /trading/ \{[^}]*proxy_pass http://trading-engine:8000/;", text)
    engine = yaml.safe_load(VALUES.read_text())["services"]["tradingEngine"]
    assert (engine["name"], engine["port"]) == ("trading-engine", 8000)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    reason = _missing_tools()
    assert reason is None, f"cannot run the real nginx: {reason}"
    work = tmp_path_factory.mktemp("nginx")
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    done = subprocess.run(["unshare", "--mount", "--net", sys.executable, "-c", NAMESPACE_SCRIPT,
                           str(NGINX_CONF), str(work)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nginx_accepts_the_config(served: dict) -> None:
    assert served["check_rc"] == 0, served["check_output"]


def test_trading_prefix_is_stripped_and_the_query_kept(served: dict) -> None:
    assert served["responses"]["status"] == {"status": 200, "body": '{"from": "engine"}'}
    assert served["seen"][0]["method"] == "GET"
    assert served["seen"][0]["path"] == "/api/trading/status?limit=5"


def test_state_changes_pass_through_with_body_token_and_forwarded_headers(served: dict) -> None:
    (pause,) = [r for r in served["seen"] if r["method"] == "POST"]
    assert pause["path"] == "/api/trading/pause"
    assert pause["body"] == '{"reason":"test"}'
    assert pause["headers"]["authorization"] == "Bearer secret-token"
    assert pause["headers"]["x-forwarded-prefix"] == "/trading"
    assert pause["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_the_engine_is_asked_by_its_service_name_which_the_chart_lets_it_answer_to(served: dict) -> None:
    # The engine refuses Host names it does not know (DNS rebinding, issue 12): nginx names the
    # Service, a name the chart always allows (tests/infra/test_helm_chart.py), and passes the
    # browser's on as X-Forwarded-Host.
    engine = yaml.safe_load(VALUES.read_text())["services"]["tradingEngine"]
    for seen in served["seen"]:
        assert seen["headers"]["host"] == f"{engine['name']}:{engine['port']}"
        assert seen["headers"]["x-forwarded-host"] == "127.0.0.1"


def test_other_paths_serve_the_dashboard(served: dict) -> None:
    assert served["responses"]["spa_route"] == {"status": 200, "body": "<html>dashboard</html>"}
    assert served["responses"]["index"]["body"] == "<html>dashboard</html>"
    assert len(served["seen"]) == 2  # nothing but /trading/ reached the engine
