"""follow_alerts keeps a subscriber whole across a service restart on its address:
every alert raised meanwhile (through another replica) arrives once, in order."""

from __future__ import annotations

import threading
import time

from manufacturing.maintenance.v1 import alert_pb2, maintenance_service_pb2_grpc, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing_sdk import MaintenanceClient, follow_alerts

from services.devstack.suite import free_ports
from tests.backends import drop_schemas, unique_name
from tests.harness import channel_to, serve, settings_for


def breach(machine: str, minute: int) -> pb.IngestReadingsRequest:
    reading = sensor_reading_pb2.SensorReading(machine_id=machine, sensor="temp", value=99.0)
    reading.time.FromSeconds(1_767_225_600 + 60 * minute)  # 2026-01-01 plus minutes
    return pb.IngestReadingsRequest(readings=[reading])


def raise_alert(port: int, machine: str, minute: int) -> None:
    with channel_to(port) as channel:
        stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
        assert stub.IngestReadings(iter([breach(machine, minute)])).alerts_raised == 1


def test_subscriber_resumes_across_a_restart_without_loss_or_duplicates(
    tmp_path, postgres_url, postgres_admin, redis_url
):
    schema = unique_name()
    shared = {
        "DATABASE_URL": postgres_url,
        "MFG_DATABASE__SCHEMA_NAME": schema,
        "REDIS_URL": redis_url,
    }
    (address,) = free_ports(1)
    received: list[str] = []
    done = threading.Event()

    def subscribe() -> None:
        with MaintenanceClient(f"127.0.0.1:{address}") as client:
            request = pb.WatchAlertsRequest(resume_after="0")
            for reply in follow_alerts(client, request, give_up_after_s=60):
                received.append(reply.alert.machine_id)
                if len(received) == 5:
                    break
        done.set()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) >= count, received

    try:
        with serve(settings_for("maintenance", tmp_path / "b", **shared)) as other:
            with channel_to(other.port) as channel:
                maintenance_service_pb2_grpc.MaintenanceServiceStub(channel).CreateAlertRule(
                    pb.CreateAlertRuleRequest(
                        rule=alert_pb2.AlertRule(
                            kind=alert_pb2.RULE_KIND_THRESHOLD,
                            severity=alert_pb2.SEVERITY_P1,
                            sensor="temp",
                            upper_limit=50.0,
                        )
                    )
                )
            first = settings_for(
                "maintenance", tmp_path / "a", MFG_SERVER__PORT=str(address), **shared
            )
            subscriber = threading.Thread(target=subscribe, daemon=True)
            with serve(first, migrated=False):
                subscriber.start()
                raise_alert(address, "m-0", 0)
                wait_for(1)
            # The subscriber's server is gone; alerts go on through the other replica.
            for minute in (1, 2, 3):
                raise_alert(other.port, f"m-{minute}", minute)
            restarted = settings_for(
                "maintenance", tmp_path / "c", MFG_SERVER__PORT=str(address), **shared
            )
            with serve(restarted, migrated=False):
                wait_for(4)
                raise_alert(address, "m-4", 4)
                assert done.wait(timeout=30)
    finally:
        drop_schemas(postgres_admin, [schema])
    assert received == ["m-0", "m-1", "m-2", "m-3", "m-4"]
