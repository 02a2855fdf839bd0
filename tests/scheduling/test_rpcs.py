"""Solve, SolveStream, Reschedule and Validate on a real in-process server.

Every schedule an RPC returns goes through the independent checker in checker.py.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from bench.scheduling import GENERATED, taillard
from services.scheduling.convert import problem_from_proto, problem_to_proto
from services.scheduling.domain.orlib import parse_orlib
from tests.errors_support import field_violations
from tests.harness import channel_to, serve, settings_for
from tests.scheduling.checker import assert_feasible
from tests.shared_data import shared_data


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(value * 1e9))
    return message


def op(*choices: tuple[str, int]) -> schedule_pb2.Operation:
    return schedule_pb2.Operation(
        eligible_machines=[
            schedule_pb2.EligibleMachine(machine_id=m, duration=d) for m, d in choices
        ]
    )


def shop() -> schedule_pb2.Problem:
    """Three jobs on machines a, b, c with every extension of the model in use."""
    return schedule_pb2.Problem(
        machines=[
            schedule_pb2.Machine(id="a", unavailable=[schedule_pb2.TimeWindow(start=4, end=6)]),
            schedule_pb2.Machine(id="b"),
            schedule_pb2.Machine(id="c"),
        ],
        jobs=[
            schedule_pb2.Job(
                id="j1", operations=[op(("a", 3)), op(("b", 2), ("c", 4))], due_time=8
            ),
            schedule_pb2.Job(
                id="j2",
                operations=[op(("b", 4)), op(("a", 3))],
                release_time=1,
                weight=3,
                due_time=9,
            ),
            schedule_pb2.Job(
                id="j3", operations=[op(("c", 2)), op(("a", 2), ("b", 2)), op(("c", 1))]
            ),
        ],
        precedences=[
            schedule_pb2.Precedence(
                before=schedule_pb2.OperationRef(job_id="j3", operation_id="0"),
                after=schedule_pb2.OperationRef(job_id="j1", operation_id="1"),
            )
        ],
        setup_times=[
            schedule_pb2.SetupTime(machine_id="a", from_job_id="j1", to_job_id="j2", duration=1),
            schedule_pb2.SetupTime(machine_id="a", from_job_id="j2", to_job_id="j1", duration=1),
        ],
    )


def assert_schedule_feasible(
    schedule: schedule_pb2.Schedule, problem: schedule_pb2.Problem | None = None
) -> None:
    assert_feasible(problem_from_proto(problem or schedule.problem), schedule.operations)


@pytest.mark.parametrize(
    "objective",
    [
        schedule_pb2.OBJECTIVE_MAKESPAN,
        schedule_pb2.OBJECTIVE_TOTAL_WEIGHTED_TARDINESS,
        schedule_pb2.OBJECTIVE_WEIGHTED_SUM,
    ],
)
def test_every_objective_gives_a_feasible_optimal_schedule(shared_scheduling_stub, objective):
    request = pb.SolveRequest(problem=shop(), objective=objective, time_limit=seconds(3))
    schedule = shared_scheduling_stub.Solve(request).schedule
    assert_schedule_feasible(schedule, shop())
    assert schedule.problem == shop() or problem_from_proto(schedule.problem) == problem_from_proto(
        shop()
    )
    assert schedule.status == schedule_pb2.SOLVE_STATUS_OPTIMAL
    assert schedule.objective == objective
    assert schedule.lower_bound == schedule.objective_value
    check = shared_scheduling_stub.Validate(
        pb.ValidateRequest(problem=shop(), operations=schedule.operations, objective=objective)
    )
    assert check.feasible and not check.violations
    assert check.objective_value == schedule.objective_value


def test_solve_keeps_to_the_time_limit_on_a_hard_instance(shared_scheduling_stub):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "la29").read_text()))
    started = time.monotonic()
    schedule = shared_scheduling_stub.Solve(
        pb.SolveRequest(problem=problem, time_limit=seconds(1))
    ).schedule
    assert time.monotonic() - started < 1 + 0.5 + 0.5  # limit + allowance + transport
    assert schedule.wall_time.ToTimedelta().total_seconds() <= 1.5
    assert_schedule_feasible(schedule)
    assert schedule.status == schedule_pb2.SOLVE_STATUS_FEASIBLE
    assert 0 < schedule.gap < 1 and schedule.lower_bound < schedule.objective_value


def test_call_deadline_shorter_than_the_time_limit_wins(shared_scheduling_stub):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "la29").read_text()))
    started = time.monotonic()
    schedule = shared_scheduling_stub.Solve(
        pb.SolveRequest(problem=problem, time_limit=seconds(30)), timeout=2
    ).schedule
    assert time.monotonic() - started < 2
    assert_schedule_feasible(schedule)


def test_a_solve_without_a_deadline_stops_at_the_servers_default(tmp_path):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "la29").read_text()))
    settings = settings_for("scheduling", tmp_path, MFG_SERVER__DEFAULT_DEADLINE_S="2")
    with serve(settings) as service, channel_to(service.port) as channel:
        started = time.monotonic()
        schedule = (
            scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
            .Solve(pb.SolveRequest(problem=problem, time_limit=seconds(30)))
            .schedule
        )
        assert time.monotonic() - started < 2
    assert schedule.status == schedule_pb2.SOLVE_STATUS_FEASIBLE
    assert_schedule_feasible(schedule)


def test_infeasible_deadline_gets_a_reason(shared_scheduling_stub):
    problem = shop()
    problem.jobs[2].deadline = 3
    schedule = shared_scheduling_stub.Solve(
        pb.SolveRequest(problem=problem, time_limit=seconds(2))
    ).schedule
    assert schedule.status == schedule_pb2.SOLVE_STATUS_INFEASIBLE
    assert "'j3'" in schedule.status_reason and "deadline 3" in schedule.status_reason
    assert not schedule.operations


def test_stream_sends_a_first_schedule_of_100x20_within_a_second_then_stops_on_cancel(
    shared_scheduling_stub,
):
    problem = problem_to_proto(taillard(*GENERATED["100x20"]))
    started = time.monotonic()
    call = shared_scheduling_stub.SolveStream(
        pb.SolveStreamRequest(problem=problem, time_limit=seconds(30)), timeout=60
    )
    first = next(call)
    # Within a second of the solver starting; the loose bound on the whole round trip
    # leaves room for a machine busy with other work.
    assert first.schedule.wall_time.ToTimedelta().total_seconds() < 1.0
    assert time.monotonic() - started < 3.0
    assert not first.final and first.schedule.operations
    assert_schedule_feasible(first.schedule, problem)
    call.cancel()
    with pytest.raises(grpc.RpcError) as caught:
        for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    assert time.monotonic() - started < 6


def test_stream_improves_and_ends_with_the_stored_schedule(scheduling_stub):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "ft10").read_text()))
    messages = list(
        scheduling_stub.SolveStream(pb.SolveStreamRequest(problem=problem, time_limit=seconds(2)))
    )
    assert len(messages) >= 2
    values = [m.schedule.objective_value for m in messages[:-1]]
    assert values == sorted(values, reverse=True)
    last = messages[-1]
    assert last.final and last.schedule.id and all(not m.final for m in messages[:-1])
    assert last.schedule.objective_value <= values[-1]
    for message in messages:
        assert_schedule_feasible(message.schedule, problem)
        assert message.lower_bound <= message.schedule.objective_value
    stored = scheduling_stub.GetSchedule(pb.GetScheduleRequest(id=last.schedule.id)).schedule
    assert stored == last.schedule


def test_validate_lists_every_violation(shared_scheduling_stub):
    problem = shop()
    bad = [
        schedule_pb2.ScheduledOperation(
            job_id="j1", operation_id="0", machine_id="a", start=0, end=3
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j1", operation_id="1", machine_id="b", start=2, end=4
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j2", operation_id="0", machine_id="b", start=0, end=4
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j2", operation_id="1", machine_id="c", start=4, end=7
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j3", operation_id="0", machine_id="c", start=0, end=2
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j3", operation_id="1", machine_id="a", start=3, end=5
        ),
        schedule_pb2.ScheduledOperation(
            job_id="j9", operation_id="0", machine_id="a", start=0, end=1
        ),
    ]
    reply = shared_scheduling_stub.Validate(pb.ValidateRequest(problem=problem, operations=bad))
    assert not reply.feasible
    kinds = {v.kind for v in reply.violations}
    assert kinds >= {
        pb.CONSTRAINT_KIND_COVERAGE,  # j3/2 missing, j9 unknown
        pb.CONSTRAINT_KIND_ELIGIBILITY,  # j2/1 on c
        pb.CONSTRAINT_KIND_RELEASE,  # j2 released at 1
        pb.CONSTRAINT_KIND_PRECEDENCE,  # j1/1 before j1/0 ends
        pb.CONSTRAINT_KIND_MACHINE_CAPACITY,  # j1/1 and j2/0 on b
        pb.CONSTRAINT_KIND_UNAVAILABILITY,  # j3/1 on a during [4, 6)
    }
    assert len([v for v in reply.violations if v.kind == pb.CONSTRAINT_KIND_COVERAGE]) == 2
    assert reply.makespan == 7


def solved(stub, problem, limit=2.0):
    return stub.Solve(pb.SolveRequest(problem=problem, time_limit=seconds(limit))).schedule


def assert_repair(original, repaired, now):
    """Operations started before ``now`` unchanged; every other one starts at ``now`` or later."""
    before = {(o.job_id, o.operation_id): o for o in original.operations}
    for o in repaired.operations:
        key = (o.job_id, o.operation_id)
        if key in before and before[key].start < now:
            assert (o.machine_id, o.start) == (before[key].machine_id, before[key].start)
        else:
            assert o.start >= now
    assert repaired.based_on_schedule_id == original.id
    assert_schedule_feasible(repaired)


def test_reschedule_after_a_machine_goes_down(scheduling_stub):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "ft06").read_text()))
    original = solved(scheduling_stub, problem)
    now = 10
    down = pb.Disruption(
        machine_down=pb.MachineDown(
            machine_id="m2", window=schedule_pb2.TimeWindow(start=12, end=30)
        )
    )
    repaired = scheduling_stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id, disruptions=[down], current_time=now, time_limit=seconds(2)
        )
    ).schedule
    assert_repair(original, repaired, now)
    assert any(w.start <= 30 and w.end == 30 for w in repaired.problem.machines[2].unavailable)
    moved = sum(
        1
        for a, b in zip(
            sorted(original.operations, key=lambda o: (o.job_id, o.operation_id)),
            sorted(repaired.operations, key=lambda o: (o.job_id, o.operation_id)),
            strict=True,
        )
        if (a.machine_id, a.start) != (b.machine_id, b.start)
    )
    assert repaired.moved_operations == moved > 0


def test_reschedule_with_rush_job_cancellation_and_late_operation(scheduling_stub):
    original = solved(scheduling_stub, shop())
    now = 2
    running = next(o for o in original.operations if o.start < now < o.end)
    rush = schedule_pb2.Job(
        id="rush", operations=[op(("b", 1)), op(("a", 1))], due_time=6, weight=10
    )
    disruptions = [
        pb.Disruption(rush_job=pb.RushJob(job=rush)),
        pb.Disruption(job_cancelled=pb.JobCancelled(job_id="j2")),
        pb.Disruption(
            operation_late=pb.OperationLate(
                operation=schedule_pb2.OperationRef(
                    job_id=running.job_id, operation_id=running.operation_id
                ),
                delay=2,
            )
        ),
    ]
    repaired = scheduling_stub.Reschedule(
        pb.RescheduleRequest(
            schedule_id=original.id,
            disruptions=disruptions,
            current_time=now,
            time_limit=seconds(2),
        )
    ).schedule
    assert_repair(original, repaired, now)
    jobs = {o.job_id for o in repaired.operations}
    assert "rush" in jobs
    late = next(
        o
        for o in repaired.operations
        if (o.job_id, o.operation_id) == (running.job_id, running.operation_id)
    )
    assert late.end == running.end + 2
    # j2 had not started by time 2 unless its first operation had; only started ones stay.
    started_j2 = [o for o in original.operations if o.job_id == "j2" and o.start < now]
    assert len([o for o in repaired.operations if o.job_id == "j2"]) == len(started_j2)


@pytest.mark.parametrize(
    ("disruption", "field"),
    [
        (pb.Disruption(), "disruptions[0]"),
        (
            pb.Disruption(job_cancelled=pb.JobCancelled(job_id="nope")),
            "disruptions[0].job_cancelled.job_id",
        ),
        (
            pb.Disruption(
                machine_down=pb.MachineDown(
                    machine_id="a", window=schedule_pb2.TimeWindow(start=5, end=5)
                )
            ),
            "disruptions[0].machine_down.window",
        ),
        (
            pb.Disruption(
                rush_job=pb.RushJob(job=schedule_pb2.Job(id="j1", operations=[op(("a", 1))]))
            ),
            "disruptions[0].rush_job.job.id",
        ),
        (
            pb.Disruption(
                rush_job=pb.RushJob(job=schedule_pb2.Job(id="r", operations=[op(("zz", 1))]))
            ),
            "disruptions[0].rush_job.job.operations[0].eligible_machines[0].machine_id",
        ),
        (
            pb.Disruption(
                operation_late=pb.OperationLate(
                    operation=schedule_pb2.OperationRef(job_id="j1", operation_id="0"), delay=0
                )
            ),
            "disruptions[0].operation_late.delay",
        ),
    ],
)
def test_bad_disruptions_name_the_field(shared_scheduling_stub, disruption, field):
    original = solved(shared_scheduling_stub, shop(), 1)
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Reschedule(
            pb.RescheduleRequest(schedule_id=original.id, disruptions=[disruption])
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_reschedule_of_unknown_schedule_is_not_found(shared_scheduling_stub):
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Reschedule(
            pb.RescheduleRequest(
                schedule_id="missing",
                disruptions=[pb.Disruption(job_cancelled=pb.JobCancelled(job_id="x"))],
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def duplicate_setup(request):
    request.problem.setup_times[1].CopyFrom(request.problem.setup_times[0])


def cyclic(request):
    request.problem.precedences.add(
        before=schedule_pb2.OperationRef(job_id="j1", operation_id="1"),
        after=schedule_pb2.OperationRef(job_id="j3", operation_id="0"),
    )


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (cyclic, "problem.precedences[0]"),
        (
            lambda r: r.problem.precedences[0].before.__setattr__("operation_id", "7"),
            "problem.precedences[0].before",
        ),
        (
            lambda r: r.problem.jobs[0].operations[0].ClearField("eligible_machines"),
            "problem.jobs[0].operations[0].eligible_machines",
        ),
        *(
            (
                lambda r, d=duration: (
                    r.problem.jobs[0].operations[0].eligible_machines[0].__setattr__("duration", d)
                ),
                "problem.jobs[0].operations[0].eligible_machines[0].duration",
            )
            for duration in (0, -3, 10**15)
        ),
        (
            lambda r: (
                r.problem.jobs[0].operations[1].eligible_machines[1].__setattr__("machine_id", "b")
            ),
            "problem.jobs[0].operations[1].eligible_machines[1].machine_id",
        ),
        (
            lambda r: r.problem.jobs[1].operations[1].__setattr__("id", "0"),
            "problem.jobs[1].operations[1].id",
        ),
        (lambda r: r.problem.machines[1].__setattr__("id", "a"), "problem.machines[1].id"),
        (
            lambda r: r.problem.machines[0].unavailable[0].__setattr__("end", 1),
            "problem.machines[0].unavailable[0]",
        ),
        (lambda r: r.problem.jobs[0].__setattr__("weight", 5000), "problem.jobs[0].weight"),
        (
            lambda r: r.problem.jobs[0].__setattr__("release_time", -1),
            "problem.jobs[0].release_time",
        ),
        (
            lambda r: r.problem.setup_times[0].__setattr__("to_job_id", "zz"),
            "problem.setup_times[0].to_job_id",
        ),
        (
            duplicate_setup,
            "problem.setup_times[1]",
        ),
        (lambda r: r.objective_weights.__setattr__("makespan", -1), "objective_weights.makespan"),
    ],
)
def test_bad_problems_name_the_field(shared_scheduling_stub, mutate, field):
    request = pb.SolveRequest(problem=shop(), time_limit=seconds(1))
    mutate(request)
    for rpc, message in (
        (shared_scheduling_stub.Solve, request),
        (
            shared_scheduling_stub.Validate,
            pb.ValidateRequest(
                problem=request.problem, objective_weights=request.objective_weights
            ),
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            rpc(message)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(caught.value), field_violations(caught.value)


def test_an_instance_with_a_zero_duration_is_refused_naming_the_operation(shared_scheduling_stub):
    problem = problem_to_proto(parse_orlib((shared_data("jssp") / "orb07").read_text()))
    zero = next(
        f"problem.jobs[{j}].operations[{o}].eligible_machines[0].duration"
        for j, job in enumerate(problem.jobs)
        for o, operation in enumerate(job.operations)
        if operation.eligible_machines[0].duration == 0
    )
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.Solve(pb.SolveRequest(problem=problem, time_limit=seconds(1)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(caught.value)) == [zero]
