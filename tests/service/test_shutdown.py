"""SIGTERM on a real service process: NOT_SERVING first, in-flight calls finish, clean exit."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc, sensor_reading_pb2

from tests.harness import channel_to, migrate, settings_for

SERVICE_NAME = "manufacturing.maintenance.v1.MaintenanceService"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def start_process(tmp_path) -> tuple[subprocess.Popen[str], int, queue.Queue[dict]]:
    environ = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "MFG_SERVER__PORT": "0",
        "MFG_METRICS__PORT": "0",
        "MFG_SERVER__SHUTDOWN_DELAY_S": "0.5",
        "MFG_SERVER__GRACE_PERIOD_S": "10",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.maintenance"],
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[dict] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                lines.put(json.loads(raw))
            except ValueError:
                continue

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line.get("message") == "serving":
            return process, int(line["address"].rsplit(":", 1)[1]), lines
    process.kill()
    raise AssertionError("service did not report serving within 30 s")


def reading(minute: int) -> sensor_reading_pb2.SensorReading:
    time_ = timestamp_pb2.Timestamp()
    time_.FromDatetime(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
    return sensor_reading_pb2.SensorReading(machine_id="m", sensor="s", time=time_, value=1.0)


def test_sigterm_drains_in_flight_stream_and_exits_cleanly(tmp_path):
    migrate(settings_for("maintenance", tmp_path))
    process, port, lines = start_process(tmp_path)
    try:
        with channel_to(port) as channel:
            stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
            release = threading.Event()

            def slow_client_stream():
                yield pb.IngestReadingsRequest(readings=[reading(0)])
                release.wait(timeout=20)
                yield pb.IngestReadingsRequest(readings=[reading(1)])

            in_flight = stub.IngestReadings.future(slow_client_stream(), timeout=30)
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=20)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

            process.send_signal(signal.SIGTERM)
            # Health turns first. A readiness round just before the signal may repeat
            # SERVING to the watcher, so read past repeats to the first change.
            changed = next(
                r.status for r in watch if r.status != health_pb2.HealthCheckResponse.SERVING
            )
            assert changed == NOT_SERVING
            time.sleep(1.0)  # past the shutdown delay: the server has stopped taking calls
            release.set()
            reply = in_flight.result(timeout=20)
            assert reply.stored_count == 2

        assert process.wait(timeout=20) == 0
        messages = []
        while not lines.empty():
            messages.append(lines.get_nowait().get("message"))
        assert messages.index("shutting down") < messages.index("stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_new_calls_are_refused_after_the_drain_starts(tmp_path):
    migrate(settings_for("maintenance", tmp_path))
    process, port, _ = start_process(tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetServiceInfo(pb.GetServiceInfoRequest(), timeout=2)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
