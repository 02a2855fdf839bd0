"""Translation between the scheduling contract's messages and the domain values."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import duration_pb2
from manufacturing.scheduling.v1 import schedule_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2 as service_pb2

from services.scheduling.domain.check import ConstraintKind, Violation
from services.scheduling.domain.model import (
    Assignment,
    EligibleMachine,
    Interval,
    Job,
    Machine,
    Objective,
    ObjectiveWeights,
    Operation,
    OperationRef,
    Precedence,
    Problem,
    Schedule,
    SetupTime,
    Solution,
    SolveStatus,
)
from services.scheduling.domain.reschedule import (
    Disruption,
    JobCancelled,
    MachineDown,
    OperationLate,
    RushJob,
)
from services.scheduling.estimation import Estimate

OBJECTIVE_TO_PROTO = {
    Objective.MAKESPAN: schedule_pb2.OBJECTIVE_MAKESPAN,
    Objective.TOTAL_WEIGHTED_TARDINESS: schedule_pb2.OBJECTIVE_TOTAL_WEIGHTED_TARDINESS,
    Objective.WEIGHTED_SUM: schedule_pb2.OBJECTIVE_WEIGHTED_SUM,
}
OBJECTIVE_FROM_PROTO = {
    schedule_pb2.OBJECTIVE_UNSPECIFIED: Objective.MAKESPAN,
    **{value: key for key, value in OBJECTIVE_TO_PROTO.items()},
}
STATUS_TO_PROTO = {
    SolveStatus.FEASIBLE: schedule_pb2.SOLVE_STATUS_FEASIBLE,
    SolveStatus.OPTIMAL: schedule_pb2.SOLVE_STATUS_OPTIMAL,
    SolveStatus.INFEASIBLE: schedule_pb2.SOLVE_STATUS_INFEASIBLE,
    SolveStatus.UNKNOWN: schedule_pb2.SOLVE_STATUS_UNKNOWN,
}
KIND_TO_PROTO = {
    ConstraintKind.COVERAGE: service_pb2.CONSTRAINT_KIND_COVERAGE,
    ConstraintKind.ELIGIBILITY: service_pb2.CONSTRAINT_KIND_ELIGIBILITY,
    ConstraintKind.DURATION: service_pb2.CONSTRAINT_KIND_DURATION,
    ConstraintKind.RELEASE: service_pb2.CONSTRAINT_KIND_RELEASE,
    ConstraintKind.PRECEDENCE: service_pb2.CONSTRAINT_KIND_PRECEDENCE,
    ConstraintKind.MACHINE_CAPACITY: service_pb2.CONSTRAINT_KIND_MACHINE_CAPACITY,
    ConstraintKind.UNAVAILABILITY: service_pb2.CONSTRAINT_KIND_UNAVAILABILITY,
    ConstraintKind.DEADLINE: service_pb2.CONSTRAINT_KIND_DEADLINE,
}


def _ref(message: schedule_pb2.OperationRef) -> OperationRef:
    return OperationRef(message.job_id, message.operation_id)


def job_from_proto(job: schedule_pb2.Job) -> Job:
    return Job(
        id=job.id,
        operations=tuple(
            Operation(
                # An operation's id defaults to its position in the job.
                id=op.id or str(index),
                eligible_machines=tuple(
                    EligibleMachine(e.machine_id, e.duration) for e in op.eligible_machines
                ),
            )
            for index, op in enumerate(job.operations)
        ),
        release=job.release_time,
        due=job.due_time,
        weight=job.weight or 1,
        deadline=job.deadline,
    )


def problem_from_proto(message: schedule_pb2.Problem) -> Problem:
    return Problem(
        machines=tuple(
            Machine(
                m.id,
                m.display_name,
                tuple(Interval(w.start, w.end) for w in m.unavailable),
            )
            for m in message.machines
        ),
        jobs=tuple(job_from_proto(job) for job in message.jobs),
        precedences=tuple(Precedence(_ref(p.before), _ref(p.after)) for p in message.precedences),
        setups=tuple(
            SetupTime(s.machine_id, s.from_job_id, s.to_job_id, s.duration)
            for s in message.setup_times
        ),
    )


def job_to_proto(job: Job) -> schedule_pb2.Job:
    return schedule_pb2.Job(
        id=job.id,
        operations=[
            schedule_pb2.Operation(
                id=op.id,
                eligible_machines=[
                    schedule_pb2.EligibleMachine(machine_id=e.machine_id, duration=e.duration)
                    for e in op.eligible_machines
                ],
            )
            for op in job.operations
        ],
        release_time=job.release,
        due_time=job.due,
        weight=job.weight,
        deadline=job.deadline,
    )


def problem_to_proto(problem: Problem) -> schedule_pb2.Problem:
    return schedule_pb2.Problem(
        machines=[
            schedule_pb2.Machine(
                id=m.id,
                display_name=m.display_name,
                unavailable=[
                    schedule_pb2.TimeWindow(start=w.start, end=w.end) for w in m.unavailable
                ],
            )
            for m in problem.machines
        ],
        jobs=[job_to_proto(job) for job in problem.jobs],
        precedences=[
            schedule_pb2.Precedence(
                before=schedule_pb2.OperationRef(
                    job_id=p.before.job_id, operation_id=p.before.operation_id
                ),
                after=schedule_pb2.OperationRef(
                    job_id=p.after.job_id, operation_id=p.after.operation_id
                ),
            )
            for p in problem.precedences
        ],
        setup_times=[
            schedule_pb2.SetupTime(
                machine_id=s.machine_id,
                from_job_id=s.from_job_id,
                to_job_id=s.to_job_id,
                duration=s.duration,
            )
            for s in problem.setups
        ],
    )


def weights_from_proto(message: schedule_pb2.ObjectiveWeights) -> ObjectiveWeights:
    if not message.makespan and not message.tardiness:
        return ObjectiveWeights()
    return ObjectiveWeights(message.makespan, message.tardiness)


def assignments_from_proto(
    operations: Iterable[schedule_pb2.ScheduledOperation],
) -> tuple[Assignment, ...]:
    return tuple(
        Assignment(op.job_id, op.operation_id, op.machine_id, op.start, op.end) for op in operations
    )


def solution_to_proto(
    solution: Solution,
    objective: Objective,
    weights: ObjectiveWeights,
    problem: Problem | None = None,
) -> schedule_pb2.Schedule:
    """A schedule message for a solution not (yet) stored: no id, no creation time."""
    message = schedule_pb2.Schedule(
        objective=OBJECTIVE_TO_PROTO[objective],
        status=STATUS_TO_PROTO[solution.status],
        makespan=solution.makespan,
        solver=solution.solver,
        objective_value=solution.objective_value,
        lower_bound=solution.lower_bound,
        gap=solution.gap,
        wall_time=_duration(solution.wall_time_s),
        status_reason=solution.reason,
        objective_weights=schedule_pb2.ObjectiveWeights(
            makespan=weights.makespan, tardiness=weights.tardiness
        ),
        moved_operations=solution.moved_operations,
        notes=list(solution.notes),
    )
    message.operations.extend(
        schedule_pb2.ScheduledOperation(
            job_id=a.job_id,
            operation_id=a.operation_id,
            machine_id=a.machine_id,
            start=a.start,
            end=a.end,
        )
        for a in solution.assignments
    )
    if problem is not None:
        message.problem.CopyFrom(problem_to_proto(problem))
    return message


def schedule_to_proto(schedule: Schedule, *, full: bool = True) -> schedule_pb2.Schedule:
    """The message for a stored schedule; ``full=False`` leaves out problem and operations."""
    message = solution_to_proto(
        schedule.solution, schedule.objective, schedule.weights, schedule.problem if full else None
    )
    if not full:
        del message.operations[:]
    message.id = schedule.id
    message.based_on_schedule_id = schedule.based_on
    message.create_time.FromDatetime(schedule.created_at)
    return message


def _duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


def disruption_from_proto(message: service_pb2.Disruption) -> Disruption | None:
    kind = message.WhichOneof("kind")
    if kind == "machine_down":
        down = message.machine_down
        return MachineDown(down.machine_id, Interval(down.window.start, down.window.end))
    if kind == "rush_job":
        return RushJob(job_from_proto(message.rush_job.job))
    if kind == "job_cancelled":
        return JobCancelled(message.job_cancelled.job_id)
    if kind == "operation_late":
        late = message.operation_late
        return OperationLate(_ref(late.operation), late.delay)
    return None


def estimate_to_proto(estimate: Estimate) -> schedule_pb2.EstimatedDuration:
    return schedule_pb2.EstimatedDuration(
        operation=schedule_pb2.OperationRef(
            job_id=estimate.job_id, operation_id=estimate.operation_id
        ),
        machine_id=estimate.machine_id,
        duration=estimate.duration,
        model_version=estimate.model_version,
    )


def violation_to_proto(violation: Violation) -> service_pb2.ConstraintViolation:
    return service_pb2.ConstraintViolation(
        kind=KIND_TO_PROTO[violation.kind],
        description=violation.description,
        operations=[
            schedule_pb2.OperationRef(job_id=r.job_id, operation_id=r.operation_id)
            for r in violation.operations
        ],
        machine_id=violation.machine_id,
    )
