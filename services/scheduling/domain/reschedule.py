"""Repairing a schedule after disruptions on the shop floor.

Operations that started before "now" stay exactly where they are (an operation running
late only gets a later end; one that ended before now cannot run late). Everything else
is placed again, no earlier than now, by the same solver, which minimises the objective
plus a cost per operation placed differently from the schedule being repaired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.runtime.errors import Violations
from services.scheduling.domain.model import (
    Assignment,
    EligibleMachine,
    Interval,
    Job,
    OperationRef,
    Problem,
)
from services.scheduling.domain.validation import MAX_DURATION, MAX_TIME


@dataclass(frozen=True)
class MachineDown:
    machine_id: str
    window: Interval


@dataclass(frozen=True)
class RushJob:
    job: Job


@dataclass(frozen=True)
class JobCancelled:
    job_id: str


@dataclass(frozen=True)
class OperationLate:
    operation: OperationRef
    delay: int


Disruption = MachineDown | RushJob | JobCancelled | OperationLate
Key = tuple[str, str]


@dataclass(frozen=True)
class RepairPlan:
    problem: Problem
    # Started operations: they keep machine and start.
    fixed: dict[Key, Assignment]
    # The schedule being repaired, for counting moved operations.
    original: dict[Key, Assignment]
    not_before: int
    notes: tuple[str, ...]


def validate_disruptions(
    problem: Problem,
    assignments: tuple[Assignment, ...],
    disruptions: list[Disruption],
    current_time: int,
    violations: Violations,
) -> None:
    """Field violations for disruptions that do not fit the stored schedule."""
    violations.check(bool(disruptions), "disruptions", "at least one disruption is required")
    violations.check(
        0 <= current_time <= MAX_TIME, "current_time", f"must be between 0 and {MAX_TIME}"
    )
    machines = {m.id for m in problem.machines}
    jobs = {job.id: job for job in problem.jobs}
    added: set[str] = set()
    ends = {(a.job_id, a.operation_id): a.end for a in assignments}
    for i, disruption in enumerate(disruptions):
        path = f"disruptions[{i}]"
        if isinstance(disruption, MachineDown):
            violations.check(
                disruption.machine_id in machines,
                f"{path}.machine_down.machine_id",
                f"unknown machine {disruption.machine_id!r}",
            )
            window = disruption.window
            violations.check(
                0 <= window.start < window.end <= MAX_TIME,
                f"{path}.machine_down.window",
                f"needs 0 <= start < end <= {MAX_TIME}",
            )
        elif isinstance(disruption, RushJob):
            job_id = disruption.job.id
            violations.check(
                job_id not in jobs and job_id not in added,
                f"{path}.rush_job.job.id",
                f"job {job_id!r} is already in the schedule",
            )
            added.add(job_id)
        elif isinstance(disruption, JobCancelled):
            violations.check(
                disruption.job_id in jobs,
                f"{path}.job_cancelled.job_id",
                f"unknown job {disruption.job_id!r}",
            )
        else:
            ref = disruption.operation
            job = jobs.get(ref.job_id)
            violations.check(
                job is not None and any(op.id == ref.operation_id for op in job.operations),
                f"{path}.operation_late.operation",
                f"unknown operation {ref.operation_id!r} of job {ref.job_id!r}",
            )
            violations.check(
                0 < disruption.delay <= MAX_DURATION,
                f"{path}.operation_late.delay",
                f"must be between 1 and {MAX_DURATION}",
            )
            # What followed an operation that is over may have started already: making it
            # longer now would overlap work that stays put.
            end = ends.get((ref.job_id, ref.operation_id), current_time)
            violations.check(
                end >= current_time,
                f"{path}.operation_late.operation",
                f"ended at {end}, before current_time {current_time}: it cannot run late",
            )


def plan_repair(
    problem: Problem,
    assignments: tuple[Assignment, ...],
    disruptions: list[Disruption],
    current_time: int,
) -> RepairPlan:
    """The problem to solve again, with what must stay and what it is compared with."""
    notes: list[str] = []
    original = {(a.job_id, a.operation_id): a for a in assignments}
    fixed = {key: a for key, a in original.items() if a.start < current_time}
    machines = {m.id: m for m in problem.machines}
    jobs = {job.id: job for job in problem.jobs}
    order = [job.id for job in problem.jobs]
    for disruption in disruptions:
        if isinstance(disruption, OperationLate):
            key = (disruption.operation.job_id, disruption.operation.operation_id)
            job = jobs[key[0]]
            started = fixed.get(key)
            operations = []
            for op in job.operations:
                if op.id == key[1]:
                    op = replace(
                        op,
                        eligible_machines=tuple(
                            EligibleMachine(e.machine_id, e.duration + disruption.delay)
                            if started is None or e.machine_id == started.machine_id
                            else e
                            for e in op.eligible_machines
                        ),
                    )
                operations.append(op)
            jobs[key[0]] = replace(job, operations=tuple(operations))
            if started is not None:
                fixed[key] = replace(started, end=started.end + disruption.delay)
        elif isinstance(disruption, JobCancelled):
            job = jobs[disruption.job_id]
            kept = tuple(op for op in job.operations if (job.id, op.id) in fixed)
            if kept:
                jobs[job.id] = replace(job, operations=kept)
                notes.append(f"job {job.id!r} cancelled; its {len(kept)} started operations stay")
            else:
                del jobs[job.id]
                order.remove(job.id)
        elif isinstance(disruption, RushJob):
            job = disruption.job
            jobs[job.id] = replace(job, release=max(job.release, current_time))
            order.append(job.id)
    for disruption in disruptions:
        if isinstance(disruption, MachineDown):
            machine = machines[disruption.machine_id]
            machines[machine.id] = replace(
                machine, unavailable=(*machine.unavailable, disruption.window)
            )
    # Operations already running keep running (even when late): a stop of their machine
    # begins when they end.
    for machine_id, machine in list(machines.items()):
        windows = []
        for window in machine.unavailable:
            running_end = max(
                (
                    a.end
                    for a in fixed.values()
                    if a.machine_id == machine_id
                    and a.end > a.start
                    and a.start < window.end
                    and a.end > window.start
                ),
                default=window.start,
            )
            if running_end > window.start:
                notes.append(
                    f"machine {machine_id!r} stops at {running_end}, when its running "
                    f"operation ends, instead of {window.start}"
                )
            if running_end < window.end:
                windows.append(Interval(max(window.start, running_end), window.end))
        machines[machine_id] = replace(machine, unavailable=tuple(windows))
    kept_operations = {(j, op.id) for j in order for op in jobs[j].operations}
    new_problem = Problem(
        machines=tuple(machines[m.id] for m in problem.machines),
        jobs=tuple(jobs[j] for j in order),
        precedences=tuple(
            p
            for p in problem.precedences
            if (p.before.job_id, p.before.operation_id) in kept_operations
            and (p.after.job_id, p.after.operation_id) in kept_operations
        ),
        setups=tuple(s for s in problem.setups if s.from_job_id in jobs and s.to_job_id in jobs),
    )
    fixed = {key: a for key, a in fixed.items() if key in kept_operations}
    original = {
        key: a for key, a in original.items() if key in kept_operations and key not in fixed
    }
    return RepairPlan(new_problem, fixed, original, current_time, tuple(notes))
