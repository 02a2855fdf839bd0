"""The MaintenanceService: validate the request, call the domain, build the reply."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import grpc
from manufacturing.common.v1 import service_info_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc, sensor_reading_pb2

from services.maintenance.domain.readings import MAX_ID_LENGTH, Reading, validate_batch
from services.maintenance.persistence import ReadingRepository
from services.runtime.errors import FieldViolation, InvalidArgument, NotFound, Violations

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MaintenanceService"].full_name

RepositoryScope = Callable[[], AbstractContextManager[ReadingRepository]]


def reading_from_proto(message: sensor_reading_pb2.SensorReading) -> Reading:
    # An unset time stays at the epoch, which validation rejects.
    return Reading(
        machine_id=message.machine_id,
        sensor=message.sensor,
        time=message.time.ToDatetime(tzinfo=UTC),
        value=message.value,
        settings=dict(message.settings),
    )


def reading_to_proto(reading: Reading) -> sensor_reading_pb2.SensorReading:
    message = sensor_reading_pb2.SensorReading(
        machine_id=reading.machine_id,
        sensor=reading.sensor,
        value=reading.value,
        settings=dict(reading.settings),
    )
    message.time.FromDatetime(reading.time)
    return message


class MaintenanceServicer(maintenance_service_pb2_grpc.MaintenanceServiceServicer):
    def __init__(
        self,
        *,
        readings: RepositoryScope,
        info: Callable[[], service_info_pb2.ServiceInfo],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._readings = readings
        self._info = info
        self._clock = clock

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    def IngestReadings(
        self, request_iterator: Iterator[pb.IngestReadingsRequest], context: grpc.ServicerContext
    ) -> pb.IngestReadingsResponse:
        stored = duplicates = 0
        for batch_index, batch in enumerate(request_iterator):
            readings = [reading_from_proto(r) for r in batch.readings]
            violations = Violations()
            validate_batch(readings, self._clock(), violations)
            try:
                violations.raise_if_any()
            except InvalidArgument as error:
                # Earlier batches are committed; say so, since no response will follow.
                raise InvalidArgument(
                    [
                        FieldViolation(
                            v.field,
                            f"{v.description} (batch {batch_index}; {stored} readings "
                            "of earlier batches were stored)",
                        )
                        for v in error.violations
                    ]
                ) from error
            # Each batch is its own transaction: acknowledged only once committed.
            with self._readings() as repository:
                result = repository.add_new(readings)
            stored += result.stored
            duplicates += result.duplicates
        return pb.IngestReadingsResponse(stored_count=stored, duplicate_count=duplicates)

    def GetLatestReadings(
        self, request: pb.GetLatestReadingsRequest, context: grpc.ServicerContext
    ) -> pb.GetLatestReadingsResponse:
        violations = Violations()
        violations.check(
            0 < len(request.machine_id) <= MAX_ID_LENGTH,
            "machine_id",
            f"must be 1 to {MAX_ID_LENGTH} characters",
        )
        violations.raise_if_any()
        with self._readings() as repository:
            latest = repository.latest_per_sensor(request.machine_id)
        if not latest:
            raise NotFound(f"machine {request.machine_id!r} has no readings")
        return pb.GetLatestReadingsResponse(readings=[reading_to_proto(r) for r in latest])
