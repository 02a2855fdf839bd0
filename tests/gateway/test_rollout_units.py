"""The rollout controller's parts that need no processes: steps, stats, state, releases,
image tags, route files, platform choice (rollout and mfg rollout) and when a color is
drained."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from manufacturing_sdk.cli.main import cli as mfg_cli
from prometheus_client import Gauge

from services.rollout import cli, cors, processes, xds
from services.rollout.controller import RolloutError, RolloutOptions
from services.rollout.drain import DrainResult, read_in_flight, wait_drained
from services.rollout.envoy_admin import _CODE_STAT, CallCounts, EnvoyFleet
from services.rollout.kubernetes import image_repository, image_version
from services.rollout.route_file import RouteFileError, render_route_file, route_weights
from services.rollout.state import ColorState, ServiceState, Topology, TopologyStore
from services.runtime.metrics import ServiceMetrics
from services.runtime.subscriptions import is_subscription


def test_weight_steps() -> None:
    assert RolloutOptions("blue-green").weight_steps() == (100,)
    assert RolloutOptions("canary").weight_steps() == (10, 50, 100)
    assert RolloutOptions("canary", steps=(5, 25)).weight_steps() == (5, 25, 100)
    for bad in ((50, 10, 100), (0, 100), (10, 10, 100), (10, 150)):
        with pytest.raises(RolloutError, match="steps"):
            RolloutOptions("canary", steps=bad).weight_steps()
    with pytest.raises(RolloutError, match="no --steps"):
        RolloutOptions("blue-green", steps=(10, 100)).weight_steps()
    with pytest.raises(RolloutError, match="strategy"):
        RolloutOptions("big-bang").weight_steps()


def test_grpc_stat_names_and_error_counting() -> None:
    for name, cluster, code in (
        ("cluster.quality-green.grpc.manufacturing.quality.v1.QualityService.GetServiceInfo.0",
         "quality-green", "0"),
        ("cluster.quality-green.grpc.13", "quality-green", "13"),
        ("cluster.scheduling-blue.grpc.grpc.health.v1.Health.Watch.14", "scheduling-blue", "14"),
    ):  # fmt: skip
        match = _CODE_STAT.match(name)
        assert match is not None and (match["cluster"], match["code"]) == (cluster, code)
    assert _CODE_STAT.match("cluster.quality-green.grpc.QualityService.Get.total") is None
    before = CallCounts({0: 10, 13: 1})
    after = CallCounts({0: 40, 3: 5, 13: 2, 14: 1})
    delta = after.since(before)
    assert delta.total == 37
    # INTERNAL and UNAVAILABLE are the version's fault; INVALID_ARGUMENT is the caller's.
    assert delta.errors == 2


def test_topology_round_trip_and_history(tmp_path: Path) -> None:
    store = TopologyStore(tmp_path)
    topology = Topology(
        data_dir=str(tmp_path),
        log_dir=str(tmp_path / "logs"),
        admin_url="http://127.0.0.1:9901",
        gateway_port=8080,
        xds_dir=str(tmp_path / "xds"),
        services={
            "quality": ServiceState(
                {"blue": ColorState([50052], "0.1.0", "/src", [123]), "green": ColorState([50062])}
            )
        },
        environ={"APP_ENV": "development"},
    )
    with store.locked():
        store.save(topology)
    loaded = store.load()
    assert loaded == topology
    assert loaded.service("quality").idle == "green"
    assert loaded.layout()["quality"].ports == {"blue": (50052,), "green": (50062,)}
    store.append_history({"service": "quality", "outcome": "completed"})
    store.append_history({"service": "quality", "outcome": "rolled_back"})
    assert [r["outcome"] for r in store.history()] == ["completed", "rolled_back"]
    assert json.loads(store.path.read_text())["services"]["quality"]["live"] == "blue"


def test_find_release(tmp_path: Path) -> None:
    current = processes.version_of(processes.REPOSITORY, "quality")
    assert processes.find_release("quality", current, tmp_path) == processes.REPOSITORY
    release = tmp_path / "releases" / "quality" / "9.9.9" / "services" / "quality"
    release.mkdir(parents=True)
    (release / "VERSION").write_text("9.9.9\n")
    assert processes.find_release("quality", "9.9.9", tmp_path) == release.parents[1]
    with pytest.raises(processes.LaunchError, match=r"no release of quality 8\.0\.0"):
        processes.find_release("quality", "8.0.0", tmp_path)


def test_image_references_name_their_version() -> None:
    acme = "registry.example.com/acme/quality"
    for image, version, repository in (
        (f"{acme}:1.2.0-0123456789ab", "1.2.0", acme),
        (f"{acme}:1.2.0-rc.1-0123456789ab-dirty", "1.2.0-rc.1", acme),
        ("localhost:5000/quality:1.2.0", "1.2.0", "localhost:5000/quality"),
        ("localhost:5000/quality", "", "localhost:5000/quality"),
        ("quality:2.0.0-dev@sha256:" + "0" * 64, "2.0.0-dev", "quality"),
    ):  # fmt: skip
        assert (image_version(image), image_repository(image)) == (version, repository), image


def test_route_file_round_trip_keeps_every_services_split() -> None:
    split = {"scheduling": {"blue": 100, "green": 0}, "quality": {"blue": 10, "green": 90},
             "maintenance": {"blue": 0, "green": 100}}  # fmt: skip
    text = render_route_file(split, "7")
    document = yaml.safe_load(text)
    assert document["version_info"] == "7"
    assert route_weights(document) == split
    # The same routes the local gateway gets for that split, ports aside, and browsers
    # allowed from no origin (none was allowed before).
    local = {s: xds.ServiceLayout({"blue": (1,), "green": (2,)}, w) for s, w in split.items()}
    assert document["resources"] == [xds.render_routes(local, cors_policy=cors.policy(()))]
    del document["resources"][0]["virtual_hosts"][0]["routes"][1:]
    with pytest.raises(RouteFileError, match="no blue/green split for scheduling"):
        route_weights(document)


class _OneEnvoy:
    def __init__(self, codes: dict[int, int], health: dict[str, bool], version: str) -> None:
        self.codes, self.health, self.version = codes, health, version

    def calls(self, clusters: list[str]) -> dict[str, CallCounts]:
        return {c: CallCounts(dict(self.codes)) for c in clusters}

    def upstream_requests(self, cluster: str) -> tuple[int, int]:
        return 1, sum(self.codes.values())

    def host_health(self, cluster: str) -> dict[str, bool]:
        return dict(self.health)

    def route_version(self) -> str:
        return self.version


def test_a_fleet_of_envoys_reads_as_one_gateway() -> None:
    a = _OneEnvoy({0: 10, 14: 1}, {"10.0.0.1:50052": True, "10.0.0.2:50052": True}, "3")
    b = _OneEnvoy({0: 5}, {"10.0.0.1:50052": True}, "2")
    fleet = EnvoyFleet([a, b])
    counts = fleet.calls(["quality-green"])["quality-green"]
    assert (counts.total, counts.errors) == (16, 1)
    assert fleet.upstream_requests("quality-green") == (2, 16)
    # b has not resolved the second pod yet: it is not healthy for the gateway as a whole.
    assert fleet.host_health("quality-green") == {"10.0.0.1:50052": True, "10.0.0.2:50052": False}
    assert fleet.route_version() == ""  # b still serves the older routes
    b.version = "3"
    assert fleet.route_version() == "3"


def test_platform_choice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLOUT_PLATFORM", "swarm")
    assert cli.main(["status"]) == 2
    assert "must be one of local, kubernetes" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUT_PLATFORM", "kubernetes")
    monkeypatch.delenv("ROLLOUT_NAMESPACE", raising=False)
    assert cli.main(["quality", "--version", "1.0.0", "--strategy", "blue-green"]) == 2
    assert "needs a namespace" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["quality", "--version", "1.0.0", "--strategy", "blue-green",
                  "--namespace", "ns", "--source", "."])  # fmt: skip
    assert "--source is not for the kubernetes platform" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUT_NAMESPACE", "ns")
    monkeypatch.setenv("ROLLOUT_CALL_HEADER", "x-api-key")
    assert cli.main(["quality", "--version", "1.0.0", "--strategy", "blue-green"]) == 2
    assert "ROLLOUT_CALL_HEADER must look like 'x-api-key: KEY'" in capsys.readouterr().err


def test_subscriptions_are_the_watch_streams_but_health() -> None:
    alerts = "/manufacturing.maintenance.v1.MaintenanceService/WatchAlerts"
    assert is_subscription(alerts, response_streaming=True)
    assert not is_subscription(alerts, response_streaming=False)
    assert not is_subscription("/manufacturing.quality.v1.QualityService/InspectStream", True)
    # grpcio's health servicer never sees the stop: its Watch is waited for like any call.
    assert not is_subscription("/grpc.health.v1.Health/Watch", True)


MAINTENANCE = "manufacturing.maintenance.v1.MaintenanceService"


class _ColorUnderDrain:
    """One old color as the drain sees it: Envoy's counts of its cluster and its own
    metrics endpoint (the runtime's real one), on a clock that moves only when the drain
    sleeps; ``at`` schedules what happens meanwhile."""

    def __init__(self) -> None:
        self.metrics = ServiceMetrics(service="maintenance", version="1", git_revision="x",
                                      color="blue")  # fmt: skip
        self.port = self.metrics.serve("127.0.0.1", 0)
        self.active, self.total = 0, 100
        self.now = 0.0
        self.script: list[tuple[float, Callable[[], None]]] = []

    def calls(self, grpc_type: str, method: str) -> Gauge:
        return self.metrics.in_flight.labels(grpc_type, MAINTENANCE, method)

    def at(self, t: float, happen: Callable[[], None]) -> None:
        self.script = sorted([*self.script, (t, happen)], key=lambda item: item[0])

    def upstream_requests(self, cluster: str) -> tuple[int, int]:
        return self.active, self.total

    def sleep(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)
        while self.script and self.script[0][0] <= self.now:
            self.script.pop(0)[1]()

    def drain(self, *, metrics: bool = True) -> DrainResult:
        return wait_drained(
            self, "maintenance-blue", (lambda: read_in_flight([self.port])) if metrics else None,
            quiet_s=1.0, timeout_s=10.0, poll_s=0.1, clock=lambda: self.now, sleep=self.sleep,
        )  # fmt: skip


@pytest.fixture
def color() -> Iterator[_ColorUnderDrain]:
    under_drain = _ColorUnderDrain()
    try:
        yield under_drain
    finally:
        under_drain.metrics.close()


def test_an_open_subscription_does_not_hold_the_drain(color: _ColorUnderDrain) -> None:
    color.calls("server_stream", "WatchAlerts").inc()
    color.active = 1  # Envoy sees the open stream in flight
    result = color.drain()
    assert result.drained and color.now == pytest.approx(1.0, abs=0.11), (color.now, result)
    assert result.details == {"cluster": "maintenance-blue", "upstream_rq_total": 100,
                              "held": 0, "open_subscriptions": 1}  # fmt: skip


def test_an_inflight_unary_holds_the_drain_until_it_ends(color: _ColorUnderDrain) -> None:
    color.calls("server_stream", "WatchAlerts").inc()
    unary = color.calls("unary", "PredictFailure")
    unary.inc()
    color.active = 2
    color.at(2.5, unary.dec)
    result = color.drain()
    assert result.drained and color.now == pytest.approx(2.5, abs=0.11), (color.now, result)


def test_a_new_call_restarts_the_quiet_window(color: _ColorUnderDrain) -> None:
    def new_call() -> None:
        color.total += 1

    color.at(0.8, new_call)
    result = color.drain()
    assert result.drained and color.now == pytest.approx(1.8, abs=0.11), (color.now, result)
    assert result.details["upstream_rq_total"] == 101


def test_the_drain_times_out_on_a_call_that_never_ends(color: _ColorUnderDrain) -> None:
    color.calls("unary", "PlanMaintenance").inc()
    result = color.drain()
    assert not result.drained and color.now == pytest.approx(10.0, abs=0.11), color.now
    assert (result.details["held"], result.details["open_subscriptions"]) == (1, 0)


def test_without_the_colors_metrics_envoys_active_requests_hold_the_drain(
    color: _ColorUnderDrain,
) -> None:
    color.calls("server_stream", "WatchAlerts").inc()
    color.active = 1
    result = color.drain(metrics=False)  # the subscription cannot be told from a slow call
    assert not result.drained and result.details["active"] == 1, result
    color.now, color.active = 0.0, 0
    color.metrics.close()  # an endpoint that stops answering: Envoy's count from then on
    result = color.drain()
    assert result.drained and color.now == pytest.approx(1.0, abs=0.11), (color.now, result)
    assert f"127.0.0.1:{color.port}" in result.details["metrics_unreadable"]


def test_mfg_rollout_status_and_history_pass_the_platform_through(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ROLLOUT_NAMESPACE", raising=False)
    monkeypatch.setenv("ROLLOUT_PLATFORM", "kubernetes")
    kubectl = tmp_path / "kubectl"  # says what it was asked, and fails
    kubectl.write_text('#!/bin/sh\necho "asked: $*" >&2\nexit 1\n', encoding="utf-8")
    kubectl.chmod(0o755)
    monkeypatch.setenv("KUBECTL", str(kubectl))
    runner = CliRunner()

    def mfg(*args: str) -> tuple[int, str]:
        result = runner.invoke(mfg_cli, ["rollout", *args, "--data-dir", str(tmp_path)])
        return result.exit_code, result.output

    code, said = mfg("status")
    assert code == 3 and "needs a namespace (--namespace)" in said, said
    code, said = mfg("status", "--namespace", "plant-7")
    assert code == 3 and "asked: --namespace plant-7 get configmap" in said, said
    code, said = mfg("status", "--platform", "local")  # over $ROLLOUT_PLATFORM
    assert code == 3 and f"no topology at {tmp_path}" in said, said
    code, said = mfg("history", "--platform", "swarm", "--namespace", "plant-7")
    assert code == 2 and "invalid choice: 'swarm'" in said, said
