"""Which browser origins the gateway lets call (services/rollout/cors.py): the policy in
the routes, kept through a rollout, and none on Kubernetes unless configured."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from services.devstack.envoy import EnvoyProcess
from services.rollout import cors, xds
from services.rollout.route_file import render_route_file
from tests.gateway import grpc_web
from tests.gateway.local_suite import ROOT

SPLIT = {service: {"blue": 100, "green": 0} for service in xds.DEFAULT_PORTS}


def allows(policy: dict, origin: str) -> bool:
    """Whether Envoy lets ``origin`` call (its regexes match the whole origin)."""
    for matcher in policy["allow_origin_string_match"]:
        if matcher.get("exact") == origin:
            return True
        if "safe_regex" in matcher and re.fullmatch(matcher["safe_regex"]["regex"], origin):
            return True
    return False


def test_development_origins_are_local_pages_on_any_port() -> None:
    policy = cors.policy(cors.DEVELOPMENT_ORIGINS)
    for origin in ("http://localhost:5173", "http://localhost", "https://127.0.0.1:8443"):
        assert allows(policy, origin), origin
    for origin in (
        "http://localhost.example.com",
        "http://localhost:5173.example.com",
        "https://pages.example.com",
        "http://127.0.0.10:3000",
    ):
        assert not allows(policy, origin), origin


def test_configured_origins_are_exact_and_malformed_ones_refused() -> None:
    policy = cors.policy(("https://dashboard.plant.example",))
    assert allows(policy, "https://dashboard.plant.example")
    assert not allows(policy, "https://dashboard.plant.example:8443")
    assert not allows(cors.policy(()), "http://localhost:5173")
    for origin in ("dashboard.plant.example", "https://plant.example/app", "*", "ftp://x"):
        with pytest.raises(cors.CorsError, match="not an origin"):
            cors.policy((origin,))


def test_the_local_routes_allow_development_origins_and_a_rollout_keeps_a_deployments() -> None:
    local = xds.render_routes(xds.default_layout())
    assert cors.policy_of({"resources": [local]}) == cors.policy(cors.DEVELOPMENT_ORIGINS)
    # A deployment's route file, rewritten to move weights, keeps its own origins...
    deployed = yaml.safe_load(render_route_file(SPLIT, "1"))
    policy = deployed["resources"][0]["virtual_hosts"][0]["typed_per_filter_config"]
    policy[cors.FILTER] = cors.policy(("https://dashboard.plant.example",))
    moved = yaml.safe_load(render_route_file(SPLIT, "2", deployed))
    assert cors.policy_of(moved) == policy[cors.FILTER]
    # ...and one from before browsers were allowed at all stays without any.
    del policy[cors.FILTER]
    assert cors.policy_of(yaml.safe_load(render_route_file(SPLIT, "3", deployed))) == (
        cors.policy(())
    )


def render(tmp_path: Path, target: str, origins: str | None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "docker/render.py", "gateway", f"--target={target}"]
    env = {"PATH": "/usr/bin:/bin"} | ({"GATEWAY_CORS_ORIGINS": origins} if origins else {})
    return subprocess.run(
        [*command, f"--out={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def rendered_policy(tmp_path: Path) -> dict:
    return cors.policy_of(yaml.safe_load((tmp_path / xds.RDS_FILE).read_text("utf-8")))


@pytest.mark.parametrize(
    ("target", "origins", "allowed", "refused"),
    [
        ("kubernetes", None, [], ["http://localhost:5173"]),
        (
            "kubernetes",
            "https://dashboard.plant.example, https://mes.plant.example:8443",
            ["https://dashboard.plant.example", "https://mes.plant.example:8443"],
            ["http://localhost:5173"],
        ),
        ("compose", None, ["http://localhost:5173"], ["https://dashboard.plant.example"]),
    ],
)
def test_rendered_gateways_allow_their_targets_origins(
    tmp_path: Path, target: str, origins: str | None, allowed: list[str], refused: list[str]
) -> None:
    completed = render(tmp_path, target, origins)
    assert completed.returncode == 0, completed.stderr
    policy = rendered_policy(tmp_path)
    assert all(allows(policy, origin) for origin in allowed)
    assert not any(allows(policy, origin) for origin in refused)
    assert policy["allow_headers"] == cors.policy(())["allow_headers"]


def test_a_malformed_configured_origin_stops_the_render(tmp_path: Path) -> None:
    completed = render(tmp_path, "kubernetes", "https://dashboard.plant.example/app")
    assert completed.returncode == 2
    assert "GATEWAY_CORS_ORIGINS" in completed.stderr and "/app" in completed.stderr
    assert not (tmp_path / xds.RDS_FILE).exists()


@pytest.mark.envoy
def test_an_envoy_whose_routes_allow_no_origin_answers_local_pages_without_permission(
    tmp_path: Path,
) -> None:
    """A cluster's gateway by default: the routes' empty policy is loaded, and a
    preflight from a local page gets no permission (nor reaches a backend)."""
    path = "/manufacturing.scheduling.v1.SchedulingService/Solve"
    origin = "http://localhost:5173"
    with EnvoyProcess(
        {"scheduling": 1, "quality": 2, "maintenance": 3}, listen_host="127.0.0.1", concurrency=1
    ) as envoy:

        def preflight() -> grpc_web.Reply:
            connection = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=5)
            return grpc_web.preflight(connection, path, origin)

        assert preflight().headers["access-control-allow-origin"] == origin
        routes = xds.render_routes(envoy.layout, cors_policy=cors.policy(()))
        staged = tmp_path / xds.RDS_FILE
        staged.write_text(xds.dump({"version_info": "none", "resources": [routes]}), "utf-8")
        staged.replace(envoy.xds_dir / xds.RDS_FILE)
        deadline = time.monotonic() + 10
        while '"none"' not in envoy.admin_get("/stats?filter=rds.grpc_routes.version_text")[1]:
            assert time.monotonic() < deadline, "Envoy did not load the routes"
            time.sleep(0.05)
        reply = preflight()
        # Answered by Envoy: sent on, it would have found no backend (503).
        assert reply.status == 200 and "access-control-allow-origin" not in reply.headers
