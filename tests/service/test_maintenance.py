"""MaintenanceService RPCs on a real in-process server."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing.maintenance.v1 import sensor_reading_pb2

from tests.errors_support import field_violations

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def reading(
    machine: str, sensor: str, minute: int, value: float
) -> sensor_reading_pb2.SensorReading:
    time = timestamp_pb2.Timestamp()
    time.FromDatetime(START + timedelta(minutes=minute))
    return sensor_reading_pb2.SensorReading(
        machine_id=machine, sensor=sensor, time=time, value=value, settings={"speed_rpm": 1500.0}
    )


def batches(*groups: list[sensor_reading_pb2.SensorReading]):
    return iter([pb.IngestReadingsRequest(readings=group) for group in groups])


def test_ingest_then_latest_per_sensor(maintenance_stub):
    reply = maintenance_stub.IngestReadings(
        batches(
            [reading("m1", "temp", 0, 20.0), reading("m1", "temp", 1, 21.5)],
            [reading("m1", "vibration", 0, 0.3), reading("m2", "temp", 5, 99.0)],
        )
    )
    assert (reply.stored_count, reply.duplicate_count) == (4, 0)

    latest = maintenance_stub.GetLatestReadings(pb.GetLatestReadingsRequest(machine_id="m1"))
    assert [(r.sensor, r.value) for r in latest.readings] == [("temp", 21.5), ("vibration", 0.3)]
    temp = latest.readings[0]
    assert temp.time.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=1)
    assert dict(temp.settings) == {"speed_rpm": 1500.0}


def test_retried_stream_stores_nothing_twice(maintenance_stub):
    group = [reading("m1", "temp", minute, float(minute)) for minute in range(50)]
    first = maintenance_stub.IngestReadings(batches(group))
    again = maintenance_stub.IngestReadings(
        batches(group[:10], [*group[10:], reading("m1", "temp", 99, 1.0)])
    )
    assert (first.stored_count, first.duplicate_count) == (50, 0)
    assert (again.stored_count, again.duplicate_count) == (1, 50)


def test_bad_reading_rejects_its_batch_and_keeps_earlier_ones(maintenance_stub):
    good = [reading("m1", "temp", 0, 1.0)]
    bad = [reading("m1", "temp", 1, 2.0), reading("m1", "temp", 2, math.nan)]
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.IngestReadings(batches(good, bad))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert "readings[1].value" in violations
    assert "batch 1" in violations["readings[1].value"]

    latest = maintenance_stub.GetLatestReadings(pb.GetLatestReadingsRequest(machine_id="m1"))
    # The first batch is stored; nothing of the rejected batch is, not even its good reading.
    assert [r.time.ToDatetime(tzinfo=UTC) for r in latest.readings] == [START]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (
            sensor_reading_pb2.SensorReading(
                sensor="t", value=1, time=reading("m", "t", 0, 0).time
            ),
            "readings[0].machine_id",
        ),
        (
            sensor_reading_pb2.SensorReading(
                machine_id="m", value=1, time=reading("m", "t", 0, 0).time
            ),
            "readings[0].sensor",
        ),
        (sensor_reading_pb2.SensorReading(machine_id="m", sensor="t", value=1), "readings[0].time"),
        (
            sensor_reading_pb2.SensorReading(
                machine_id="m" * 129, sensor="t", time=reading("m", "t", 0, 0).time
            ),
            "readings[0].machine_id",
        ),
    ],
)
def test_malformed_readings_name_the_field(maintenance_stub, bad, field):
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.IngestReadings(batches([bad]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_reading_from_the_far_future_is_rejected(maintenance_stub):
    future = reading("m", "t", 0, 1.0)
    future.time.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.IngestReadings(batches([future]))
    assert "readings[0].time" in field_violations(caught.value)


def test_empty_and_oversized_batches_are_rejected(maintenance_stub):
    for group in ([], [reading("m", "t", i, 0.0) for i in range(10_001)]):
        with pytest.raises(grpc.RpcError) as caught:
            maintenance_stub.IngestReadings(batches(group))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "readings" in field_violations(caught.value)


def test_latest_of_unknown_machine_is_not_found(maintenance_stub):
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.GetLatestReadings(pb.GetLatestReadingsRequest(machine_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        maintenance_stub.GetLatestReadings(pb.GetLatestReadingsRequest(machine_id=""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
