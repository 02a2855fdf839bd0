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


def test_bad_readings_are_rejected_and_listed_while_the_good_ones_are_stored(maintenance_stub):
    good = [reading("m1", "temp", 0, 1.0)]
    mixed = [
        reading("m1", "temp", 1, 2.0),
        reading("m1", "temp", 2, math.nan),
        reading("m1", "temp", 3, math.inf),
        reading("m1", "temp", 4, 4.0),
    ]
    reply = maintenance_stub.IngestReadings(batches(good, mixed))
    assert (reply.stored_count, reply.duplicate_count, reply.rejected_count) == (3, 0, 2)
    assert [(r.batch_index, r.reading_index, r.field) for r in reply.rejected] == [
        (1, 1, "readings[1].value"),
        (1, 2, "readings[2].value"),
    ]
    page = maintenance_stub.GetReadings(pb.GetReadingsRequest(machine_id="m1"))
    assert [r.value for r in page.readings] == [1.0, 2.0, 4.0]


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
    reply = maintenance_stub.IngestReadings(batches([bad, reading("m", "t", 5, 1.0)]))
    assert reply.stored_count == 1
    assert [r.field for r in reply.rejected] == [field]


def test_reading_from_the_far_future_is_rejected(maintenance_stub):
    future = reading("m", "t", 0, 1.0)
    future.time.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    reply = maintenance_stub.IngestReadings(batches([future]))
    assert (reply.stored_count, reply.rejected_count) == (0, 1)
    assert reply.rejected[0].field == "readings[0].time"


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


def test_bulk_batches_are_idempotent_and_keep_the_first_of_repeated_keys(maintenance_stub):
    # Large enough for the COPY path on PostgreSQL; the same semantics on SQLite.
    group = [reading("bulk", "temp", minute, float(minute)) for minute in range(600)]
    repeated = reading("bulk", "temp", 5, -1.0)
    first = maintenance_stub.IngestReadings(batches([*group[:300], repeated, *group[300:]]))
    assert (first.stored_count, first.duplicate_count) == (600, 1)
    again = maintenance_stub.IngestReadings(batches(group[::-1]))
    assert (again.stored_count, again.duplicate_count) == (0, 600)
    page = maintenance_stub.GetReadings(pb.GetReadingsRequest(machine_id="bulk", page_size=1000))
    assert [r.value for r in page.readings] == [float(m) for m in range(600)]
