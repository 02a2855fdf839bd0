"""SchedulingService RPCs on a real in-process server."""

from __future__ import annotations

import itertools

import grpc
import pytest
from google.protobuf import duration_pb2
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.scheduling.domain.validation import MAX_JOBS
from tests.errors_support import field_violations


def two_by_two() -> schedule_pb2.Problem:
    """Two jobs over machines a and b; the optimum makespan is 7."""

    def op(machine: str, duration: int) -> schedule_pb2.Operation:
        return schedule_pb2.Operation(
            eligible_machines=[schedule_pb2.EligibleMachine(machine_id=machine, duration=duration)]
        )

    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="a"), schedule_pb2.Machine(id="b")],
        jobs=[
            schedule_pb2.Job(id="j1", operations=[op("a", 3), op("b", 2)]),
            schedule_pb2.Job(id="j2", operations=[op("b", 4), op("a", 3)]),
        ],
    )


def test_solve_returns_a_feasible_stored_schedule(scheduling_stub):
    reply = scheduling_stub.Solve(pb.SolveRequest(problem=two_by_two()))
    schedule = reply.schedule
    assert schedule.id
    assert schedule.status == schedule_pb2.SOLVE_STATUS_OPTIMAL
    assert schedule.objective == schedule_pb2.OBJECTIVE_MAKESPAN
    assert schedule.objective_value == schedule.lower_bound == 7
    assert schedule.gap == 0
    assert schedule.wall_time.ToTimedelta().total_seconds() < 5
    assert len(schedule.operations) == 4
    assert schedule.makespan == max(op.end for op in schedule.operations) == 7
    by_job: dict[str, list[schedule_pb2.ScheduledOperation]] = {}
    for op in schedule.operations:
        by_job.setdefault(op.job_id, []).append(op)
    for ops in by_job.values():  # job order respected
        ops.sort(key=lambda o: int(o.operation_id))
        assert all(a.end <= b.start for a, b in itertools.pairwise(ops))

    stored = scheduling_stub.GetSchedule(pb.GetScheduleRequest(id=schedule.id)).schedule
    assert stored == schedule


def test_get_unknown_schedule_is_not_found(scheduling_stub):
    with pytest.raises(grpc.RpcError) as caught:
        scheduling_stub.GetSchedule(pb.GetScheduleRequest(id="does-not-exist"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_pages_through_every_schedule_newest_first(scheduling_stub):
    ids = [
        scheduling_stub.Solve(pb.SolveRequest(problem=two_by_two())).schedule.id for _ in range(5)
    ]
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = scheduling_stub.ListSchedules(pb.ListSchedulesRequest(page_size=2, page_token=token))
        assert len(page.schedules) <= 2
        assert all(not s.operations and not s.HasField("problem") for s in page.schedules)
        seen += [s.id for s in page.schedules]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("problem"), "problem"),
        (
            lambda r: (
                r.problem.jobs[0].operations[0].eligible_machines[0].__setattr__("machine_id", "zz")
            ),
            "problem.jobs[0].operations[0].eligible_machines[0].machine_id",
        ),
        (lambda r: r.problem.jobs[1].__setattr__("id", "j1"), "problem.jobs[1].id"),
        (
            lambda r: (
                r.problem.jobs[0].operations[1].eligible_machines[0].__setattr__("duration", -1)
            ),
            "problem.jobs[0].operations[1].eligible_machines[0].duration",
        ),
        (lambda r: r.problem.jobs[0].ClearField("operations"), "problem.jobs[0].operations"),
        (lambda r: r.problem.machines[0].__setattr__("id", "x" * 200), "problem.machines[0].id"),
        (lambda r: r.__setattr__("objective", 42), "objective"),
        (lambda r: r.time_limit.CopyFrom(duration_pb2.Duration(seconds=-5)), "time_limit"),
    ],
)
def test_malformed_problems_name_the_field(scheduling_stub, mutate, field):
    request = pb.SolveRequest(problem=two_by_two())
    mutate(request)
    with pytest.raises(grpc.RpcError) as caught:
        scheduling_stub.Solve(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_oversized_problem_is_rejected_before_solving(scheduling_stub):
    request = pb.SolveRequest(problem=two_by_two())
    template = request.problem.jobs[0]
    for index in range(MAX_JOBS):
        request.problem.jobs.add().CopyFrom(template)
        request.problem.jobs[-1].id = f"extra{index}"
    with pytest.raises(grpc.RpcError) as caught:
        scheduling_stub.Solve(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "problem.jobs" in field_violations(caught.value)
    assert not scheduling_stub.ListSchedules(pb.ListSchedulesRequest()).schedules


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListSchedulesRequest(page_size=-1), "page_size"),
        (pb.ListSchedulesRequest(page_size=1000), "page_size"),
        (pb.ListSchedulesRequest(page_token="garbage!"), "page_token"),
        (pb.ListSchedulesRequest(page_token="eyJhIjoxfQ"), "page_token"),  # {"a":1}
        (pb.ListSchedulesRequest(page_token="eyJjcmVhdGVkX2F0IjoxLCJpZCI6Mn0"), "page_token"),
    ],
)
def test_bad_list_requests_name_the_field(scheduling_stub, request_, field):
    with pytest.raises(grpc.RpcError) as caught:
        scheduling_stub.ListSchedules(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_service_info_reports_version_and_metadata(scheduling_stub):
    reply, call = scheduling_stub.GetServiceInfo.with_call(
        pb.GetServiceInfoRequest(), metadata=[("x-request-id", "req-123")]
    )
    assert reply.info.service_name == "manufacturing.scheduling.v1.SchedulingService"
    assert reply.info.version == "9.8.7"
    assert reply.info.environment == "development"
    assert reply.info.start_time.seconds > 0
    metadata = dict(call.initial_metadata())
    assert metadata["x-request-id"] == "req-123"
    assert metadata["x-service-version"] == "9.8.7"
