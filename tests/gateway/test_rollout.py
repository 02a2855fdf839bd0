"""Rollouts of the real quality service behind a real Envoy, under steady load.

One module-wide stack: Envoy on free ports, quality's blue color as real processes
(``python -m services.quality``) and a load generator in a process of its own
(tests/gateway/loadgen.py: unary calls plus health Watch streams through the gateway).
Each test runs one rollout with the real controller and diffs the load generator's
counts around it. The tests run in order and share the stack: a completed rollout
leaves the other color live for the next.

The topology, releases and broken releases come from tests/gateway/topology.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from manufacturing.quality.v1 import quality_service_pb2, quality_service_pb2_grpc

from services.devstack.envoy import EnvoyProcess
from services.devstack.suite import free_ports
from services.rollout import processes, xds
from services.rollout.controller import RolloutController, RolloutOptions
from services.rollout.envoy_admin import EnvoyAdmin
from services.rollout.state import TopologyStore
from tests.gateway.topology import (
    ROOT,
    SERVICE_ENVIRON,
    LocalTopology,
    local_topology,
    make_release,
    rollout_options,
    wait_until_serving,
)

pytestmark = pytest.mark.envoy

SERVICE = "quality"
RATE = 120  # unary calls per second
STEP_S = 1.5


def options(strategy: str, **overrides: Any) -> RolloutOptions:
    return rollout_options(strategy, step_s=STEP_S, **overrides)


def broken_release_options(strategy: str, **overrides: Any) -> RolloutOptions:
    """A broken release carries the live color's migrations, applied by the rollouts
    before it: running them again (a subprocess, seconds here) would prove nothing."""
    return options(strategy, migrate=False, **overrides)


@dataclass
class Window:
    """What the load generator saw between two snapshots."""

    unary: Counter[str]
    streams: Counter[str]
    colors: Counter[str]
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unary_failed(self) -> int:
        return sum(n for code, n in self.unary.items() if code != "OK")

    @property
    def streams_failed(self) -> int:
        return sum(n for outcome, n in self.streams.items() if outcome != "ok")

    def __repr__(self) -> str:
        return (
            f"unary {dict(self.unary)} streams {dict(self.streams)} colors {dict(self.colors)} "
            f"failures {self.failures[:5]}"
        )


@dataclass
class Stack:
    topology: LocalTopology
    load_out: Path
    load: subprocess.Popen[bytes]
    releases: dict[str, Path]

    @property
    def data_dir(self) -> Path:
        return self.topology.data_dir

    @property
    def envoy(self) -> EnvoyProcess:
        return self.topology.envoy

    @property
    def store(self) -> TopologyStore:
        return TopologyStore(self.data_dir)

    def snapshot(self) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while True:
            try:
                document: dict[str, Any] = json.loads(self.load_out.read_text("utf-8"))
                return document
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def window(self, before: dict[str, Any]) -> Window:
        # Let calls started before now complete (unary deadline 5 s, usually ms).
        time.sleep(0.5)
        after = self.snapshot()
        earlier_failures = len(before["failures"])
        return Window(
            Counter(after["unary"]) - Counter(before["unary"]),
            Counter(after["streams"]) - Counter(before["streams"]),
            Counter(after["colors"]) - Counter(before["colors"]),
            after["failures"][earlier_failures:],
        )

    def rollout(
        self, version: str, rollout_options: RolloutOptions
    ) -> tuple[dict[str, Any], Window]:
        assert self.load.poll() is None, "the load generator stopped"
        before = self.snapshot()
        record = RolloutController(self.data_dir, echo=print).run(
            SERVICE, version, rollout_options, self.releases[version]
        )
        return record, self.window(before)

    def gateway_info(self) -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{self.envoy.port}") as channel:
            stub = quality_service_pb2_grpc.QualityServiceStub(channel)
            return stub.GetServiceInfo(quality_service_pb2.GetServiceInfoRequest(), timeout=5).info


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("rollout")
    releases = {
        version: make_release(root, SERVICE, version, fault)
        for version, fault in (
            ("0.1.0", None),
            ("0.2.0", None),
            ("0.3.0", None),
            ("0.4.0-not-ready", "not-ready"),
            ("0.4.0-errors", "errors"),
            ("0.4.0-different", "different-answers"),
            ("0.4.0-errors-under-load", "errors-under-load"),
        )
    }
    with local_topology(root, SERVICE, "0.1.0", releases["0.1.0"], SERVICE_ENVIRON) as topology:
        load_out = root / "load.json"
        load = subprocess.Popen(
            [
                sys.executable, "-m", "tests.gateway.loadgen",
                "--target", topology.target, "--rate", str(RATE),
                "--streams", "2", "--stream-s", "1.5", "--duration", "600",
                "--out", str(load_out),
            ],
            cwd=ROOT,
        )  # fmt: skip
        try:
            stack = Stack(topology, load_out, load, releases)
            deadline = time.monotonic() + 30
            while not load_out.exists() or not stack.snapshot()["unary"].get("OK"):
                assert load.poll() is None, "load generator exited"
                assert time.monotonic() < deadline, "no load through the gateway"
                time.sleep(0.1)
            first = stack.snapshot()
            assert not first["failures"], first["failures"]
            yield stack
        finally:
            if load.poll() is None:
                load.send_signal(signal.SIGINT)
                try:
                    load.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    load.kill()


def _settled(stack: Stack, live: str, version: str) -> None:
    state = stack.store.load().service(SERVICE)
    assert state.live == live
    assert state.weights == {live: 100, state.idle: 0}
    assert state.colors[live].version == version
    assert state.colors[live].pids and all(processes.alive(p) for p in state.colors[live].pids)
    assert state.colors[state.idle].pids == []  # stopped
    info = stack.gateway_info()
    assert (info.version, info.color) == (version, live)


def _events(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["event"] == name]


def test_blue_green_rollout_fails_no_call(stack: Stack) -> None:
    record, window = stack.rollout("0.2.0", options("blue-green"))
    assert record["outcome"] == "completed", record
    assert window.unary_failed == 0 and window.streams_failed == 0, window
    assert window.unary.total() >= RATE * 3 and window.streams["ok"] >= 2, window
    assert window.colors["blue"] and window.colors["green"], window  # traffic moved
    assert [e["green"] for e in _events(record, "weights")] == [100]
    drained = _events(record, "drained")
    assert drained and drained[0]["cluster"] == "quality-blue"
    stopped = _events(record, "stopped")[-1]
    assert stopped["color"] == "blue" and stopped["graceful"], stopped
    _settled(stack, "green", "0.2.0")
    # Nothing reached the old color after it was drained and stopped.
    admin = EnvoyAdmin(stack.envoy.admin_url)
    total_then = drained[0]["upstream_rq_total"]
    assert admin.upstream_requests("quality-blue") == (0, total_then)


def test_canary_rollout_fails_no_call(stack: Stack) -> None:
    record, window = stack.rollout("0.3.0", options("canary", steps=(10, 50, 100)))
    assert record["outcome"] == "completed", record
    assert window.unary_failed == 0 and window.streams_failed == 0, window
    assert [e["blue"] for e in _events(record, "weights")] == [10, 50, 100]
    assert [e["event"] for e in record["events"]].count("step passed") == 3
    assert all(e["calls"] > 0 and e["errors"] == 0 for e in _events(record, "step passed"))
    _settled(stack, "blue", "0.3.0")


def test_release_that_never_gets_ready_is_rolled_back(stack: Stack) -> None:
    record, window = stack.rollout(
        # It never gets ready: how long to wait for that is the test's only cost.
        "0.4.0-not-ready",
        broken_release_options("blue-green", ready_timeout_s=1.0),
    )
    assert record["outcome"] == "rolled_back", record
    assert "readiness" in record["reason"] and "NOT_SERVING" in record["reason"]
    assert window.unary_failed == 0 and window.streams_failed == 0, window
    assert window.colors == Counter({"blue": window.colors["blue"]}), window
    _settled(stack, "blue", "0.3.0")


def test_release_returning_errors_is_rolled_back_before_any_traffic(stack: Stack) -> None:
    record, window = stack.rollout("0.4.0-errors", broken_release_options("blue-green"))
    assert record["outcome"] == "rolled_back", record
    assert record["reason"].startswith("smoke:") and "INTERNAL" in record["reason"]
    assert not _events(record, "weights")  # no call was ever routed to it
    assert window.unary_failed == 0 and window.streams_failed == 0, window
    _settled(stack, "blue", "0.3.0")


def test_release_whose_answers_differ_is_rolled_back(stack: Stack) -> None:
    record, window = stack.rollout("0.4.0-different", broken_release_options("blue-green"))
    assert record["outcome"] == "rolled_back", record
    assert record["reason"].startswith("parity: ComputeControlChart differs"), record["reason"]
    assert not _events(record, "weights")
    assert window.unary_failed == 0 and window.streams_failed == 0, window
    _settled(stack, "blue", "0.3.0")


def test_canary_with_errors_under_load_stops_within_its_first_step(stack: Stack) -> None:
    """Smoke and parity pass; the defect shows only under traffic, at 10 %."""
    record, window = stack.rollout(
        "0.4.0-errors-under-load",
        broken_release_options("canary", steps=(10, 50, 100), max_error_rate=0.001),
    )
    assert record["outcome"] == "rolled_back", record
    assert "server errors" in record["reason"], record["reason"]
    weights = _events(record, "weights")
    assert [e["green"] for e in weights] == [10, 0]  # first step, then back
    # Only what the first step could reach failed: 10 % of the calls for one step.
    budget = math.ceil(0.10 * RATE * STEP_S)
    assert 0 < window.unary_failed <= budget, window
    assert set(window.unary) <= {"OK", "INTERNAL"}, window
    assert window.streams_failed == 0, window
    _settled(stack, "blue", "0.3.0")


def test_kill_9_of_a_backend_under_load(stack: Stack) -> None:
    """The live color runs two replicas; one is killed with SIGKILL under load."""
    topology = stack.store.load()
    state = topology.service(SERVICE)
    live = state.colors[state.live]
    (extra_port,) = free_ports(1)
    environ = {**topology.environ, "DATA_DIR": topology.data_dir}
    (extra_pid,) = processes.start_color(
        SERVICE, state.live, [extra_port], Path(live.source), environ, Path(topology.log_dir)
    )
    wait_until_serving(SERVICE, extra_port, extra_pid)
    live.ports.append(extra_port)
    live.pids.append(extra_pid)
    xds.write_clusters(
        Path(topology.xds_dir), topology.layout(), topology.next_xds_version(),
        timing=topology.timing(),
    )  # fmt: skip
    stack.store.save(topology)
    admin = EnvoyAdmin(topology.admin_url)
    cluster = xds.cluster_name(SERVICE, state.live)
    deadline = time.monotonic() + 10
    while not (len(health := admin.host_health(cluster)) == 2 and all(health.values())):
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    time.sleep(1.0)  # both replicas take calls

    victim = live.pids[0]
    try:
        before = stack.snapshot()
        os.kill(victim, signal.SIGKILL)
        time.sleep(4.0)
        window = stack.window(before)
        assert not processes.alive(victim)
        calls = window.unary.total()
        assert calls >= RATE * 3, window
        assert window.unary_failed <= 0.001 * calls, window
        # A server stream cannot be retried once it has begun: those open on the killed
        # replica end with an error and the caller opens the next one (never more than
        # the streams open at once).
        assert window.streams_failed <= 2, window
        assert window.streams["ok"] >= 2, window
        _, retries = stack.envoy.admin_get(f"/stats?filter=cluster.{cluster}.upstream_rq_retry")
        print(f"kill -9: {window}; {retries.strip()}")
    finally:
        # Back to one replica: the survivor.
        topology = stack.store.load()
        live = topology.service(SERVICE).colors[topology.service(SERVICE).live]
        index = live.pids.index(victim)
        del live.ports[index], live.pids[index]
        xds.write_clusters(
            Path(topology.xds_dir), topology.layout(), topology.next_xds_version(),
            timing=topology.timing(),
        )  # fmt: skip
        stack.store.save(topology)


def test_status_and_history_commands(stack: Stack) -> None:
    """`rollout status` and `rollout history`, run as a user would, on this stack."""

    def rollout(*args: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "services.rollout", *args, "--data-dir", str(stack.data_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    report = json.loads(rollout("status", "--json"))
    quality = report["services"][SERVICE]
    assert quality["blue"] == {
        **quality["blue"],
        "version": "0.3.0",
        "weight": 100,
        "live": True,
        "healthy_hosts": 1,
        "hosts": 1,
    }
    assert quality["blue"]["processes"]
    assert (quality["green"]["weight"], quality["green"]["processes"]) == (0, [])
    assert quality["green"]["healthy_hosts"] == 0
    table = rollout("status")
    assert any(
        line.split()[:4] == [SERVICE, "blue", "0.3.0", "100%"] for line in table.splitlines()
    )

    history = [json.loads(line) for line in rollout("history", "--json").splitlines()]
    outcomes = [(r["to"]["version"], r["outcome"]) for r in history]
    assert outcomes == [
        ("0.2.0", "completed"),
        ("0.3.0", "completed"),
        ("0.4.0-not-ready", "rolled_back"),
        ("0.4.0-errors", "rolled_back"),
        ("0.4.0-different", "rolled_back"),
        ("0.4.0-errors-under-load", "rolled_back"),
    ]
    assert all(r["events"] and r["duration_s"] > 0 for r in history)
