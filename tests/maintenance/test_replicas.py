"""Two replicas on one PostgreSQL and one real Redis: alerts reach every subscriber once."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb

from tests.backends import drop_schemas, unique_name
from tests.harness import channel_to, serve, settings_for

START = datetime(2026, 5, 1, tzinfo=UTC)
pytestmark = pytest.mark.postgres


def breach(machine: str, minute: int) -> pb.IngestReadingsRequest:
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(START + timedelta(minutes=minute))
    return pb.IngestReadingsRequest(
        readings=[
            sensor_reading_pb2.SensorReading(
                machine_id=machine, sensor="temp", time=moment, value=100.0 + minute
            )
        ]
    )


class Subscriber:
    """A WatchAlerts stream read on a thread into a queue."""

    def __init__(self, stub, request: pb.WatchAlertsRequest) -> None:
        self.received: queue.Queue[pb.WatchAlertsResponse] = queue.Queue()
        self.call = stub.WatchAlerts(request)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for message in self.call:
                self.received.put(message)
        except grpc.RpcError:
            pass

    def take(self, count: int, timeout_s: float = 10) -> list[pb.WatchAlertsResponse]:
        return [self.received.get(timeout=timeout_s) for _ in range(count)]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=5)


@pytest.fixture
def two_replicas(tmp_path, postgres_url, postgres_admin, redis_url):
    schema = unique_name()
    environ = {
        "DATABASE_URL": postgres_url,
        "MFG_DATABASE__SCHEMA_NAME": schema,
        "REDIS_URL": redis_url,
    }
    try:
        with (
            serve(settings_for("maintenance", tmp_path / "a", **environ)) as a,
            serve(settings_for("maintenance", tmp_path / "b", **environ), migrated=False) as b,
            channel_to(a.port) as channel_a,
            channel_to(b.port) as channel_b,
        ):
            yield (
                maintenance_service_pb2_grpc.MaintenanceServiceStub(channel_a),
                maintenance_service_pb2_grpc.MaintenanceServiceStub(channel_b),
            )
    finally:
        drop_schemas(postgres_admin, [schema])


def test_alert_raised_on_one_replica_reaches_the_other_and_resumes_exactly_once(two_replicas):
    stub_a, stub_b = two_replicas
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
    other = Subscriber(stub_b, pb.WatchAlertsRequest(resume_after="0", machine_ids=["m-1"]))
    try:
        assert stub_a.IngestReadings(iter([breach("m-0", 0)])).alerts_raised == 1
        (first,) = watcher.take(1)
        assert first.alert.machine_id == "m-0"
        assert first.alert.severity == alert_pb2.SEVERITY_P0
    finally:
        watcher.close()

    # While disconnected, alerts are raised through both replicas.
    for index, stub in enumerate([stub_a, stub_b, stub_a, stub_b], start=1):
        assert stub.IngestReadings(iter([breach(f"m-{index}", index)])).alerts_raised == 1

    resumed = Subscriber(stub_a, pb.WatchAlertsRequest(resume_after=first.cursor))
    try:
        missed = resumed.take(4)
        assert [m.alert.machine_id for m in missed] == ["m-1", "m-2", "m-3", "m-4"]
        assert len({m.alert.id for m in missed}) == 4
        # Nothing arrives twice, and new alerts keep coming on the resumed stream.
        stub_b.IngestReadings(iter([breach("m-5", 5)]))
        (latest,) = resumed.take(1)
        assert latest.alert.machine_id == "m-5"
        with pytest.raises(queue.Empty):
            resumed.received.get(timeout=1.5)
        # The filtered subscriber saw only its machine.
        (only,) = other.take(1)
        assert only.alert.machine_id == "m-1"
        assert other.received.empty()
    finally:
        resumed.close()
        other.close()
