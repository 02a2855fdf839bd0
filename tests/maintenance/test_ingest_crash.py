"""Kill the service process in the middle of an ingestion stream, retry, count the rows."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc, sensor_reading_pb2

from tests.harness import channel_to, migrate, settings_for
from tests.service.test_shutdown import start_process

START = datetime(2026, 4, 1, tzinfo=UTC)
BATCHES, PER_BATCH = 20, 200


def batch(index: int) -> pb.IngestReadingsRequest:
    readings = []
    for offset in range(PER_BATCH):
        step = index * PER_BATCH + offset
        moment = timestamp_pb2.Timestamp()
        moment.FromDatetime(START + timedelta(seconds=step))
        readings.append(
            sensor_reading_pb2.SensorReading(
                machine_id="m", sensor="s", time=moment, value=float(step)
            )
        )
    return pb.IngestReadingsRequest(readings=readings)


def all_readings(stub) -> list[sensor_reading_pb2.SensorReading]:
    found, token = [], ""
    while True:
        page = stub.GetReadings(
            pb.GetReadingsRequest(machine_id="m", page_size=1000, page_token=token)
        )
        found += page.readings
        token = page.next_page_token
        if not token:
            return found


def test_killed_mid_stream_then_retried_stores_every_reading_once(tmp_path):
    migrate(settings_for("maintenance", tmp_path))
    process, port, _ = start_process(tmp_path)
    try:
        with channel_to(port) as channel:
            stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
            acknowledged = stub.IngestReadings(iter([batch(i) for i in range(5)]))
            assert acknowledged.stored_count == 5 * PER_BATCH

            def killed_stream():
                for index in range(5, BATCHES):
                    if index == 12:
                        time.sleep(1.0)  # let the server commit some of this stream
                        process.send_signal(signal.SIGKILL)
                        process.wait(timeout=10)
                    yield batch(index)

            with pytest.raises(grpc.RpcError) as caught:
                stub.IngestReadings(killed_stream())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        process.kill()
        process.wait(timeout=10)

    process, port, _ = start_process(tmp_path)
    try:
        with channel_to(port) as channel:
            stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
            # The client retries everything it has no acknowledgement for.
            retried = stub.IngestReadings(iter([batch(i) for i in range(5, BATCHES)]))
            total = (BATCHES - 5) * PER_BATCH
            assert retried.stored_count + retried.duplicate_count == total
            stored = all_readings(stub)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    times = [r.time.ToDatetime(tzinfo=UTC) for r in stored]
    assert len(stored) == BATCHES * PER_BATCH == len(set(times))
    assert [r.value for r in stored] == [float(i) for i in range(BATCHES * PER_BATCH)]
