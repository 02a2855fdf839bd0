"""`ops check --daily` against the real local suite (`python -m services.devstack`: three
services + Envoy), as an operator runs it: every service SERVING with its version; one
stopped turns its line red and the exit code non-zero."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1.health_pb2 import HealthCheckResponse

from services.ops import checks
from services.ops.report import Report
from tests.gateway.local_suite import local_suite as start_local_suite
from tests.harness import channel_to, serve, settings_for, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduling", "quality", "maintenance")
RED = "\x1b[31m"


@dataclass
class RunningSuite:
    gateway: int
    admin: int
    ports: dict[str, int]
    data_dir: Path


def pid_listening_on(port: int) -> int:
    """The process with a TCP socket listening on 127.0.0.1/0.0.0.0:``port`` (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise LookupError(f"nothing listens on port {port}")


@pytest.fixture
def local_suite(tmp_path) -> Iterator[RunningSuite]:
    data_dir = tmp_path / "var"
    with start_local_suite(data_dir) as running:
        services = dict(zip(SERVICES, running.backends, strict=True))
        yield RunningSuite(running.gateway, running.admin, services, data_dir)


def ops_check(suite: RunningSuite, *extra: str) -> subprocess.CompletedProcess[str]:
    targets = [
        *(f"--service={s}=127.0.0.1:{port}" for s, port in suite.ports.items()),
        f"--gateway=127.0.0.1:{suite.gateway}",
        f"--admin=127.0.0.1:{suite.admin}",
        f"--data-dir={suite.data_dir}",
    ]
    return subprocess.run(
        [sys.executable, "-m", "services.ops", "check", "--daily", *targets, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def daily_in_process(suite: RunningSuite) -> Report:
    return checks.daily(
        checks.Targets(
            services={s: f"127.0.0.1:{port}" for s, port in suite.ports.items()},
            metrics={},
            gateway=f"127.0.0.1:{suite.gateway}",
            admin=f"127.0.0.1:{suite.admin}",
            data_dir=suite.data_dir,
        )
    )


@pytest.mark.envoy
def test_daily_check_reports_every_service_then_turns_a_stopped_one_red(local_suite):
    healthy = ops_check(local_suite, "--json")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = {check["name"]: check for check in json.loads(healthy.stdout)["checks"]}
    assert {"service scheduling", "service quality", "service maintenance", "gateway", "host",
            "alerts", "machine alerts"} == set(lines)  # fmt: skip
    assert lines["machine alerts"]["status"] == "OK"
    for service in SERVICES:
        line = lines[f"service {service}"]
        version = (ROOT / "services" / service / "VERSION").read_text().strip()
        assert (line["status"], line["health"]) == ("OK", "SERVING")
        assert line["info"]["version"] == version
        assert (
            line["info"]["service_name"] == f"manufacturing.{service}.v1.{service.title()}Service"
        )
        assert f"SERVING  v{version}" in line["summary"]
        assert lines["gateway"]["services"][service]["version"] == version
        assert lines["gateway"]["services"][service]["healthy"] >= 1
    assert lines["gateway"]["status"] == "OK"
    assert {"cpu_busy", "memory_available_bytes", "disk_free_bytes", "net_receive_bytes_per_s",
            "disk_write_bytes_per_s"} <= set(lines["host"])  # fmt: skip

    # Stop quality (SIGSTOP: the process hangs, as in an outage; the launcher, which
    # would take the whole suite down if a service exited, does not notice).
    quality = pid_listening_on(local_suite.ports["quality"])
    os.kill(quality, signal.SIGSTOP)
    try:
        text = ops_check(local_suite, "--color=always")
        as_json = json.loads(daily_in_process(local_suite).to_json())
    finally:
        os.kill(quality, signal.SIGCONT)

    assert text.returncode == 2, text.stdout
    shown = {
        service: next(line for line in text.stdout.splitlines() if f"service {service} " in line)
        for service in SERVICES
    }
    assert shown["quality"].startswith(RED) and "FAIL" in shown["quality"]
    assert not shown["scheduling"].startswith(RED)
    assert not shown["maintenance"].startswith(RED)

    statuses = {check["name"]: check["status"] for check in as_json["checks"]}
    assert statuses["service quality"] == "FAIL"
    assert statuses["service scheduling"] == statuses["service maintenance"] == "OK"
    assert statuses["gateway"] == "FAIL"  # quality is unreachable through it too


def test_service_line_reads_availability_and_process_use_from_metrics(tmp_path):
    with serve(settings_for("quality", tmp_path)) as service:
        address = f"127.0.0.1:{service.port}"
        metrics = f"127.0.0.1:{service.metrics_port}"
        with channel_to(service.port) as channel:  # ready once its inspection workers are
            quality = "manufacturing.quality.v1.QualityService"
            wait_for_status(channel, quality, HealthCheckResponse.SERVING, timeout_s=60)
        first = checks.check_service("quality", address, metrics)
        second = checks.check_service("quality", address, metrics)
    assert first.status.name == second.status.name == "OK"
    calls = second.data["calls"]
    # The first check's GetServiceInfo call is counted, with its status code.
    assert calls["calls_by_code"]["OK"] >= 1
    assert calls["availability"] == 1.0
    assert second.data["process"]["rss_bytes"] > 10 * 1024 * 1024
    assert second.data["process"]["cpu_seconds"] > 0


def test_machine_alerts_count_the_unacknowledged_ones_by_severity():
    # Loaded dynamically: the alert stream is newer than some versions of the contract.
    pb: Any = importlib.import_module("manufacturing.maintenance.v1.maintenance_service_pb2")
    pb_grpc: Any = importlib.import_module(
        "manufacturing.maintenance.v1.maintenance_service_pb2_grpc"
    )
    if not hasattr(pb, "WatchAlertsRequest"):
        pytest.skip("this maintenance contract has no WatchAlerts")
    alert_pb2: Any = importlib.import_module("manufacturing.maintenance.v1.alert_pb2")

    def watch_alerts(request, context):
        assert request.resume_after == "0"
        for i, (severity, acknowledged) in enumerate(
            [("P0", False), ("P1", True), ("P2", False), ("P2", False)]
        ):
            alert = alert_pb2.Alert(
                id=f"a{i}",
                severity=alert_pb2.Severity.Value(f"SEVERITY_{severity}"),
                acknowledged=acknowledged,
            )
            yield pb.WatchAlertsResponse(alert=alert, cursor=str(i + 1))
        while context.is_active():  # then waits for new alerts, as the service does
            time.sleep(0.05)

    servicer = type("Alerts", (pb_grpc.MaintenanceServiceServicer,), {})()
    servicer.WatchAlerts = watch_alerts
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MaintenanceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        check = checks.check_machine_alerts(f"127.0.0.1:{port}")
    finally:
        server.stop(grace=None)
    assert check.data["open"] == {"P0": 1, "P1": 0, "P2": 2}
    assert check.status.name == "WARN"  # an open P0 machine alert
