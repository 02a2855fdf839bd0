"""Two service processes on one PostgreSQL schema and one real Redis: alerts raised through
one replica reach subscribers of the other, and a resumed subscriber gets each missed
alert exactly once.

Each replica is ``python -m services.maintenance`` in its own OS process, configured only
through MFG_* / DATABASE_URL / REDIS_URL variables, and used once grpc.health.v1 says it
is SERVING.
"""

from __future__ import annotations

import functools
import queue
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb

from services.devstack.suite import free_ports, full_name, wait_until_serving
from services.maintenance.app import alert_stream_key
from services.rollout import processes
from tests.backends import drop_schemas, unique_name
from tests.harness import StreamReader, channel_to, migrate, settings_for

START = datetime(2026, 5, 1, tzinfo=UTC)
READY_TIMEOUT_S = 60
pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def breach(machine: str, minute: int) -> pb.IngestReadingsRequest:
    """One reading above the threshold rule's limit."""
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(START + timedelta(minutes=minute))
    return pb.IngestReadingsRequest(
        readings=[
            sensor_reading_pb2.SensorReading(
                machine_id=machine, sensor="temp", time=moment, value=100.0 + minute
            )
        ]
    )


class Subscriber(StreamReader[pb.WatchAlertsResponse]):
    """A WatchAlerts stream read on a thread into a queue."""

    def __init__(self, stub, request: pb.WatchAlertsRequest) -> None:
        super().__init__(stub.WatchAlerts(request))

    def assert_nothing_more(self, wait_s: float = 1.5) -> None:
        with pytest.raises(queue.Empty):
            self.received.get(timeout=wait_s)


@pytest.fixture
def two_processes(tmp_path, postgres_url, postgres_admin, redis_url):
    """Ports of two running replicas sharing one fresh schema and one Redis."""
    schema = unique_name()
    environ = {
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": postgres_url,
        "MFG_DATABASE__SCHEMA_NAME": schema,
        "REDIS_URL": redis_url,
        "MFG_SERVER__SHUTDOWN_DELAY_S": "0",
        "MFG_SERVER__GRACE_PERIOD_S": "2",
        "MFG_READINESS_INTERVAL_S": "0.2",
    }
    settings = settings_for("maintenance", tmp_path, **environ)
    migrate(settings)  # the one-shot step a deployment runs before starting replicas
    ports = free_ports(2)
    pids: list[int] = []
    try:
        for index, port in enumerate(ports):
            pids += processes.start_color(
                "maintenance", f"replica{index}", [port], processes.REPOSITORY, environ, tmp_path
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        for pid, port in zip(pids, ports, strict=True):
            wait_until_serving(
                port, full_name("maintenance"), deadline, functools.partial(processes.alive, pid)
            )
        yield ports
    finally:
        processes.stop(pids, timeout=10)
        redis.Redis.from_url(redis_url).delete(alert_stream_key(settings))
        drop_schemas(postgres_admin, [schema])


def test_alert_through_one_process_reaches_the_other_and_resumes_exactly_once(two_processes):
    port_a, port_b = two_processes
    with channel_to(port_a) as channel_a, channel_to(port_b) as channel_b:
        stub_a = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel_a)
        stub_b = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel_b)
        stub_a.CreateAlertRule(
            pb.CreateAlertRuleRequest(
                rule=alert_pb2.AlertRule(
                    kind=alert_pb2.RULE_KIND_THRESHOLD,
                    severity=alert_pb2.SEVERITY_P0,
                    sensor="temp",
                    upper_limit=50.0,
                )
            )
        )
        watcher = Subscriber(stub_b, pb.WatchAlertsRequest(resume_after="0"))
        only_m2 = Subscriber(stub_a, pb.WatchAlertsRequest(resume_after="0", machine_ids=["m-2"]))
        try:
            assert stub_a.IngestReadings(iter([breach("m-0", 0)])).alerts_raised == 1
            (first,) = watcher.take(1)
            assert (first.alert.machine_id, first.alert.severity) == ("m-0", alert_pb2.SEVERITY_P0)
        finally:
            watcher.close()

        # While the subscriber is away, alerts are raised through both processes.
        for index, stub in enumerate([stub_a, stub_b, stub_a], start=1):
            assert stub.IngestReadings(iter([breach(f"m-{index}", index)])).alerts_raised == 1

        resumed = Subscriber(stub_b, pb.WatchAlertsRequest(resume_after=first.cursor))
        try:
            missed = resumed.take(3)
            assert [m.alert.machine_id for m in missed] == ["m-1", "m-2", "m-3"]
            assert len({m.alert.id for m in [first, *missed]}) == 4
            resumed.assert_nothing_more()
            # The resumed stream goes on with alerts raised after it reconnected.
            assert stub_a.IngestReadings(iter([breach("m-4", 4)])).alerts_raised == 1
            (latest,) = resumed.take(1)
            assert latest.alert.machine_id == "m-4"
            resumed.assert_nothing_more()
            # A filtered subscriber of the other process saw only its machine, once.
            (only,) = only_m2.take(1)
            assert only.alert.machine_id == "m-2"
            only_m2.assert_nothing_more(wait_s=0.5)
        finally:
            resumed.close()
            only_m2.close()
