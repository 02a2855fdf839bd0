"""Durations a request leaves out are estimated with the learned model and reported."""

from __future__ import annotations

import grpc
import pytest
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from tests.errors_support import field_violations
from tests.scheduling.test_rpcs import assert_schedule_feasible, op, seconds, solved


def work(product: str, quantity: int, shift: str = "day") -> schedule_pb2.WorkDescription:
    return schedule_pb2.WorkDescription(product=product, quantity=quantity, shift=shift)


def partly_known() -> schedule_pb2.Problem:
    """Two jobs on machines m0 and m1; three durations left out, one given beside them."""
    first = op(("m0", 0), ("m1", 25))
    first.work.CopyFrom(work("P03", 40))
    second = op(("m1", 0))
    second.work.CopyFrom(work("P05", 120, "night"))
    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="m0"), schedule_pb2.Machine(id="m1")],
        jobs=[
            schedule_pb2.Job(id="a", operations=[first, op(("m1", 10))]),
            schedule_pb2.Job(id="b", operations=[op(("m0", 7)), second]),
        ],
    )


def predicted(stub, queries: list[pb.DurationQuery]) -> list[int]:
    reply = stub.PredictDurations(pb.PredictDurationsRequest(queries=queries))
    return [max(1, round(d)) for d in reply.durations]


def test_solve_fills_left_out_durations_and_lists_them(shared_scheduling_stub):
    reply = shared_scheduling_stub.Solve(
        pb.SolveRequest(problem=partly_known(), time_limit=seconds(2))
    )
    expected = predicted(
        shared_scheduling_stub,
        [
            pb.DurationQuery(product="P03", machine_id="m0", quantity=40, shift="day"),
            pb.DurationQuery(product="P05", machine_id="m1", quantity=120, shift="night"),
        ],
    )
    listed = {
        (e.operation.job_id, e.operation.operation_id, e.machine_id): e.duration
        for e in reply.estimated_durations
    }
    assert listed == {("a", "0", "m0"): expected[0], ("b", "1", "m1"): expected[1]}
    version = shared_scheduling_stub.GetServiceInfo(pb.GetServiceInfoRequest()).info
    assert {e.model_version for e in reply.estimated_durations} == {
        version.model_versions["processing_time"]
    }
    schedule = reply.schedule
    durations = {
        (job.id, o.id or str(i), e.machine_id): e.duration
        for job in schedule.problem.jobs
        for i, o in enumerate(job.operations)
        for e in o.eligible_machines
    }
    # Estimates take the place of the left-out durations; given ones stay as they were.
    assert durations[("a", "0", "m0")] == expected[0]
    assert durations[("a", "0", "m1")] == 25 and durations[("b", "0", "m0")] == 7
    assert_schedule_feasible(schedule)  # against the completed problem
    assert any("estimated by the duration model" in note for note in schedule.notes)
    stored = shared_scheduling_stub.GetSchedule(pb.GetScheduleRequest(id=schedule.id)).schedule
    assert stored.problem == schedule.problem and list(stored.notes) == list(schedule.notes)


def test_stream_lists_the_estimates_on_its_final_message(shared_scheduling_stub):
    messages = list(
        shared_scheduling_stub.SolveStream(
            pb.SolveStreamRequest(problem=partly_known(), time_limit=seconds(1))
        )
    )
    assert messages[-1].final and len(messages[-1].estimated_durations) == 2
    assert all(not m.estimated_durations for m in messages[:-1])
    assert_schedule_feasible(messages[-1].schedule)


def test_a_rush_job_may_leave_its_durations_out(shared_scheduling_stub):
    problem = partly_known()
    original = solved(shared_scheduling_stub, problem, 1)
    rush_operation = op(("m0", 0))
    rush_operation.work.CopyFrom(work("P01", 10))
    rush = schedule_pb2.Job(id="rush", operations=[rush_operation])
    reply = shared_scheduling_stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=[pb.Disruption(rush_job=pb.RushJob(job=rush))],
            current_time=1,
            time_limit=seconds(1),
        )
    )
    [estimate] = reply.estimated_durations
    assert (estimate.operation.job_id, estimate.machine_id) == ("rush", "m0")
    placed = next(o for o in reply.schedule.operations if o.job_id == "rush")
    assert placed.end - placed.start == estimate.duration >= 1
    assert_schedule_feasible(reply.schedule)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda p: p.jobs[0].operations[0].work.__setattr__("quantity", 0),
            "problem.jobs[0].operations[0].work.quantity",
        ),
        (
            lambda p: p.jobs[1].operations[1].work.__setattr__("product", ""),
            "problem.jobs[1].operations[1].work.product",
        ),
        (
            lambda p: p.jobs[1].operations[1].ClearField("work"),
            "problem.jobs[1].operations[1].eligible_machines[0].duration",
        ),
    ],
)
def test_durations_left_out_without_a_usable_work_description_are_refused(
    shared_scheduling_stub, mutate, field
):
    problem = partly_known()
    mutate(problem)
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Solve(pb.SolveRequest(problem=problem, time_limit=seconds(1)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
