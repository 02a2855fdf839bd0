"""The SchedulingService: validate the request, call the domain, build the reply."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import grpc
from manufacturing.common.v1 import service_info_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime import paging
from services.runtime.errors import FieldViolation, InvalidArgument, NotFound, Violations
from services.scheduling.convert import OBJECTIVE_FROM_PROTO, problem_from_proto, schedule_to_proto
from services.scheduling.domain.dispatch import dispatch
from services.scheduling.domain.model import Schedule
from services.scheduling.domain.validation import validate_problem
from services.scheduling.persistence import ScheduleRepository

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulingService"].full_name
MAX_TIME_LIMIT_S = 3600

RepositoryScope = Callable[[], AbstractContextManager[ScheduleRepository]]


class SchedulingServicer(scheduling_service_pb2_grpc.SchedulingServiceServicer):
    def __init__(
        self,
        *,
        schedules: RepositoryScope,
        info: Callable[[], service_info_pb2.ServiceInfo],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._schedules = schedules
        self._info = info
        self._clock = clock

    def GetServiceInfo(
        self, request: pb.GetServiceInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServiceInfoResponse:
        return pb.GetServiceInfoResponse(info=self._info())

    def Solve(self, request: pb.SolveRequest, context: grpc.ServicerContext) -> pb.SolveResponse:
        violations = Violations()
        violations.check(request.HasField("problem"), "problem", "is required")
        violations.check(
            request.objective in OBJECTIVE_FROM_PROTO, "objective", "unknown objective"
        )
        if request.HasField("time_limit"):
            seconds = request.time_limit.ToTimedelta().total_seconds()
            violations.check(
                0 < seconds <= MAX_TIME_LIMIT_S,
                "time_limit",
                f"must be positive and at most {MAX_TIME_LIMIT_S} s",
            )
        problem = problem_from_proto(request.problem)
        if request.HasField("problem"):
            validate_problem(problem, violations)
        violations.raise_if_any()

        schedule = Schedule(
            id=uuid.uuid4().hex,
            created_at=self._clock(),
            objective=OBJECTIVE_FROM_PROTO[request.objective],
            problem=problem,
            solution=dispatch(problem),
        )
        with self._schedules() as repository:
            repository.add(schedule)
        return pb.SolveResponse(schedule=schedule_to_proto(schedule))

    def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.ServicerContext
    ) -> pb.GetScheduleResponse:
        violations = Violations()
        violations.check(0 < len(request.id) <= 64, "id", "must be 1 to 64 characters")
        violations.raise_if_any()
        with self._schedules() as repository:
            schedule = repository.get(request.id)
        if schedule is None:
            raise NotFound(f"no schedule with id {request.id!r}")
        return pb.GetScheduleResponse(schedule=schedule_to_proto(schedule))

    def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.ServicerContext
    ) -> pb.ListSchedulesResponse:
        size = paging.page_size(request.page_size)
        after = _cursor(paging.decode_token(request.page_token, {"created_at", "id"}))
        with self._schedules() as repository:
            # One extra row tells whether another page follows.
            page = repository.list_newest_first(size + 1, after)
        next_token = ""
        if len(page) > size:
            page = page[:size]
            last = page[-1]
            next_token = paging.encode_token(
                {"created_at": last.created_at.isoformat(), "id": last.id}
            )
        return pb.ListSchedulesResponse(
            schedules=[schedule_to_proto(s, full=False) for s in page],
            next_page_token=next_token,
        )


def _cursor(position: dict[str, object] | None) -> tuple[datetime, str] | None:
    if position is None:
        return None
    created_at, schedule_id = position["created_at"], position["id"]
    try:
        if not isinstance(created_at, str) or not isinstance(schedule_id, str):
            raise ValueError("token fields are not strings")
        return datetime.fromisoformat(created_at), schedule_id
    except ValueError as error:
        raise InvalidArgument(
            [FieldViolation("page_token", "not a token this service issued")]
        ) from error
