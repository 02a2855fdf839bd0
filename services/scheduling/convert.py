"""Translation between the scheduling contract's messages and the domain values."""

from __future__ import annotations

from manufacturing.scheduling.v1 import schedule_pb2

from services.scheduling.domain.model import (
    EligibleMachine,
    Job,
    Machine,
    Objective,
    Operation,
    Problem,
    Schedule,
    SolveStatus,
)

OBJECTIVE_TO_PROTO = {Objective.MAKESPAN: schedule_pb2.OBJECTIVE_MAKESPAN}
OBJECTIVE_FROM_PROTO = {
    schedule_pb2.OBJECTIVE_UNSPECIFIED: Objective.MAKESPAN,
    schedule_pb2.OBJECTIVE_MAKESPAN: Objective.MAKESPAN,
}
STATUS_TO_PROTO = {
    SolveStatus.FEASIBLE: schedule_pb2.SOLVE_STATUS_FEASIBLE,
    SolveStatus.OPTIMAL: schedule_pb2.SOLVE_STATUS_OPTIMAL,
}


def problem_from_proto(message: schedule_pb2.Problem) -> Problem:
    return Problem(
        machines=tuple(Machine(m.id, m.display_name) for m in message.machines),
        jobs=tuple(
            Job(
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
            )
            for job in message.jobs
        ),
    )


def problem_to_proto(problem: Problem) -> schedule_pb2.Problem:
    return schedule_pb2.Problem(
        machines=[
            schedule_pb2.Machine(id=m.id, display_name=m.display_name) for m in problem.machines
        ],
        jobs=[
            schedule_pb2.Job(
                id=job.id,
                operations=[
                    schedule_pb2.Operation(
                        id=op.id,
                        eligible_machines=[
                            schedule_pb2.EligibleMachine(
                                machine_id=e.machine_id, duration=e.duration
                            )
                            for e in op.eligible_machines
                        ],
                    )
                    for op in job.operations
                ],
            )
            for job in problem.jobs
        ],
    )


def schedule_to_proto(schedule: Schedule, *, full: bool = True) -> schedule_pb2.Schedule:
    """The message for a schedule; ``full=False`` leaves out problem and operations."""
    solution = schedule.solution
    message = schedule_pb2.Schedule(
        id=schedule.id,
        objective=OBJECTIVE_TO_PROTO[schedule.objective],
        status=STATUS_TO_PROTO[solution.status],
        makespan=solution.makespan,
        solver=solution.solver,
    )
    message.create_time.FromDatetime(schedule.created_at)
    if full:
        message.problem.CopyFrom(problem_to_proto(schedule.problem))
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
    return message
