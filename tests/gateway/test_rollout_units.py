"""The rollout controller's parts that need no processes: steps, stats, state, releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.rollout import processes
from services.rollout.controller import RolloutError, RolloutOptions
from services.rollout.envoy_admin import _CODE_STAT, CallCounts
from services.rollout.state import ColorState, ServiceState, Topology, TopologyStore


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
