"""The trading engine's Helm chart (seed task 22.1, 22.2, 22.4): values as the task states
them, `helm lint`, and manifests rendered by Helm's own template engine.

Rendering uses helm-python-sdk, which binds Helm's Go SDK (the code behind `helm lint` and
`helm template`) through a C ABI: no cluster is contacted and no renderer is imitated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm  # noqa: E402 - Helm's Go SDK, a test dependency
import pytest
import yaml
from typer.testing import CliRunner

CHART = Path(__file__).resolve().parents[2] / "infra" / "helm" / "stonks-oracle"
RELEASE, NAMESPACE = "stonks", "stonks-oracle"
SEVERITY_WARNING = 2


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`helm template` of the chart: every rendered object, parsed."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [doc for text in files.values() for doc in yaml.safe_load_all(text) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def engine_values(**overrides: Any) -> dict[str, Any]:
    return {"services": {"tradingEngine": overrides}}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return only(manifests, "Deployment")


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only_container,) = deployment["spec"]["template"]["spec"]["containers"]
    return only_container


# --- values.yaml, as seed task 22.1 states it -------------------------------------------------

def test_values_have_the_trading_engine_entry_of_task_22_1() -> None:
    te = yaml.safe_load((CHART / "values.yaml").read_text())["services"]["tradingEngine"]
    assert te["replicas"] == 1
    assert te["image"] == "trading-engine"
    assert " ".join(te["command"]) == "uvicorn services.trading.app:app --host 0.0.0.0 --port 8000"
    assert te["tier"] == "trading"
    assert te["port"] == 8000
    assert te["secrets"] == ["stonks-core-secrets", "stonks-broker-secrets"]
    assert te["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                               "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert (te["readiness"]["path"], te["readiness"]["port"]) == ("/ready", 8000)
    assert (te["liveness"]["path"], te["liveness"]["port"]) == ("/health", 8000)
    assert te["paperBroker"]["enabled"] is False
    assert te["ingress"]["enabled"] is False
    assert te["ingress"]["host"] == "stonks-trading.celestium.life"


def test_chart_passes_helm_lint_strict() -> None:
    report = helm.lint(CHART, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= SEVERITY_WARNING] == []


# --- the rendered deployment ------------------------------------------------------------------

def test_default_release_renders_deployment_service_network_policy_and_migration_job(
        manifests: list[dict[str, Any]]) -> None:
    assert sorted(o["kind"] for o in manifests) == ["Deployment", "Job", "NetworkPolicy", "Service"]


def test_one_replica_replaced_with_recreate(deployment: dict[str, Any]) -> None:
    # The engine's per-account advisory lock admits one engine: no rolling overlap.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_more_than_one_replica_is_refused_at_render() -> None:
    with pytest.raises(helm.HelmError, match="replicas must be 1"):
        render(engine_values(replicas=2))


def test_container_runs_the_task_command_with_probes_and_resources(container: dict[str, Any]) -> None:
    assert container["image"] == "trading-engine:0.1.0"
    assert container["command"] == ["uvicorn", "services.trading.app:app", "--host", "0.0.0.0", "--port", "8000"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/stonks-trading"} <= mounts


def test_settings_come_from_the_secrets(container: dict[str, Any]) -> None:
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == ["stonks-core-secrets", "stonks-broker-secrets"]
    env = env_of(container)
    for name in ("STONKS_DATABASE_URL", "STONKS_REDIS_URL", "STONKS_API_TOKEN"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "stonks-core-secrets", "key": name}
    # The broker service checks the order jobs' signatures with the same key (issue 12).
    assert env["STONKS_ORDER_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "stonks-broker-secrets", "key": "STONKS_ORDER_SIGNING_KEY"}
    assert env["STONKS_API_HOST"]["value"] == "0.0.0.0"
    assert env["STONKS_DATA_DIR"]["value"] == "/var/lib/stonks-trading"


def test_extra_settings_reach_the_container() -> None:
    container = only(render(engine_values(extraEnv={"STONKS_TRADING_RISK_TIER": "conservative"})),
                     "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["STONKS_TRADING_RISK_TIER"]["value"] == "conservative"


def test_pods_carry_tier_label_and_prometheus_scrape_annotations(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["metadata"]
    assert pod["labels"]["tier"] == "trading"
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod["labels"])
    assert {k: v for k, v in pod["annotations"].items() if k.startswith("prometheus.io/")} == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "8000", "prometheus.io/path": "/metrics"}


def test_service_is_trading_engine_on_8000_and_selects_the_engine(
        manifests: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    service = only(manifests, "Service")
    assert service["metadata"]["name"] == "trading-engine"  # the dashboard proxies to this name
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    job = only(manifests, "Job")
    assert not selects(service["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"])


def test_paper_broker_option_runs_the_engine_with_the_built_in_broker() -> None:
    container = only(render(engine_values(paperBroker={"enabled": True})),
                     "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["stonks-trading", "run", "--paper-broker"]


# --- network policy (22.2) --------------------------------------------------------------------

def test_network_policy_admits_query_api_dashboard_and_traefik_on_8000(
        manifests: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    policy = only(manifests, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"])
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    peers = rule["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "query-api"}}} in peers
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dashboard"}}} in peers
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}} in peers


def test_network_policy_egress_is_dns_postgres_redis_and_public_https_and_smtp(
        manifests: list[dict[str, Any]]) -> None:
    """Every notification channel can reach out: SNS, the Gmail API and webhooks over HTTPS,
    email over SMTP submission (587) or implicit TLS (465), public addresses only."""
    policy = only(manifests, "NetworkPolicy")["spec"]
    ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP"), (443, "TCP"), (587, "TCP"),
                     (465, "TCP")}
    (public,) = [rule for rule in policy["egress"] if rule["ports"][0]["port"] == 443]
    assert {p["port"] for p in public["ports"]} == {443, 587, 465}
    block = public["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["except"]


def test_trading_is_not_switched_off_again_at_every_pod_start(manifests: list[dict[str, Any]]) -> None:
    """The owner's enable switch lives in the database; a STONKS_TRADING_ENABLED in the pod's
    environment would overwrite it at each start (the environment is applied on start)."""
    container = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "STONKS_TRADING_ENABLED" not in {e["name"] for e in container.get("env", [])}


def test_network_policy_also_covers_the_migration_job(manifests: list[dict[str, Any]]) -> None:
    policy = only(manifests, "NetworkPolicy")["spec"]
    job = only(manifests, "Job")
    assert selects(policy["podSelector"]["matchLabels"], job["spec"]["template"]["metadata"]["labels"])


def test_postgres_egress_can_be_narrowed_to_a_destination() -> None:
    peer = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgresql"}}}
    policy = only(render(engine_values(networkPolicy={"postgres": {"port": 5432, "to": [peer]}})),
                  "NetworkPolicy")["spec"]
    (rule,) = [r for r in policy["egress"] if r["ports"][0]["port"] == 5432]
    assert rule["to"] == [peer]


# --- migration job ----------------------------------------------------------------------------

def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(manifests: list[dict[str, Any]]) -> None:
    job = only(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["stonks-trading", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = env_of(migrate)
    assert env["STONKS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "stonks-core-secrets"


# --- ingress (22.4) ---------------------------------------------------------------------------

def test_ingress_is_off_by_default_and_routes_the_host_to_the_service_when_on() -> None:
    ingress = only(render(engine_values(ingress={"enabled": True})), "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "stonks-trading.celestium.life"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "trading-engine", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["stonks-trading.celestium.life"]


def test_disabling_the_engine_renders_nothing() -> None:
    assert render(engine_values(enabled=False)) == []


# --- the chart names commands and paths the service really has --------------------------------

def test_probe_and_metrics_paths_exist_in_the_app() -> None:
    from services.trading.app import app

    paths = app.openapi()["paths"]
    assert {"get"} <= set(paths["/ready"]) & set(paths["/health"]) & set(paths["/metrics"])


@pytest.mark.parametrize("argv", [["db", "upgrade", "--help"], ["run", "--help"]])
def test_commands_of_the_job_and_the_paper_broker_option_exist(argv: list[str]) -> None:
    from services.trading.cli import app

    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    if argv[0] == "run":
        assert "--paper-broker" in result.output


# --- the Host names the API answers to (issue 12, defect 9) ------------------------------------

def _allowed_hosts(values: dict[str, Any] | None = None) -> frozenset[str]:
    from services.shared.config import AppConfig
    from services.trading.api.guard import served_names

    container = only(render(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    config = AppConfig(api_host=env["STONKS_API_HOST"]["value"],
                       api_allowed_hosts=env["STONKS_API_ALLOWED_HOSTS"]["value"])
    return served_names(config.api_host, config.allowed_host_names)


def test_the_api_answers_to_every_host_the_cluster_sends() -> None:
    from services.trading.api.guard import host_allowed

    names = _allowed_hosts()
    for host in ("trading-engine:8000",  # the dashboard's nginx and query-api, by the Service's name
                 f"trading-engine.{NAMESPACE}:8000", f"trading-engine.{NAMESPACE}.svc.cluster.local:8000",
                 "10.42.0.17:8000"):  # kubelet probes and Prometheus, by the pod's address
        assert host_allowed(host, names), host
    assert not host_allowed("stonks-trading.celestium.life", names)  # no ingress: not a name it has
    with_ingress = _allowed_hosts(engine_values(ingress={"enabled": True}, allowedHosts=["stonks.example.com"]))
    assert host_allowed("stonks-trading.celestium.life", with_ingress)
    assert host_allowed("stonks.example.com:443", with_ingress)
    assert not host_allowed("rebind.attacker.example", with_ingress)
