"""A constructive dispatching heuristic: always feasible, fast, a warm start for solvers.

Earliest-completion-time list scheduling: at each step, among the next unscheduled
operation of every job, and every machine eligible for it, place the pair that would
finish first; ties go to the job with the most work remaining (MWKR), which keeps long
jobs from being starved. Flexible problems are handled by the machine choice.
"""

from __future__ import annotations

from services.scheduling.domain.model import Assignment, Problem, Solution, SolveStatus

SOLVER_NAME = "dispatch:ect-mwkr"


def dispatch(problem: Problem) -> Solution:
    machine_free = {machine.id: 0 for machine in problem.machines}
    job_free = [0] * len(problem.jobs)
    next_operation = [0] * len(problem.jobs)
    # Remaining work of a job, counting each operation at its shortest eligible duration.
    remaining = [
        sum(min(e.duration for e in op.eligible_machines) for op in job.operations)
        for job in problem.jobs
    ]
    assignments: list[Assignment] = []
    total = sum(len(job.operations) for job in problem.jobs)
    while len(assignments) < total:
        best: tuple[int, int, int, str, int] | None = None  # (end, -remaining, job, machine, start)
        for j, job in enumerate(problem.jobs):
            if next_operation[j] == len(job.operations):
                continue
            operation = job.operations[next_operation[j]]
            for eligible in operation.eligible_machines:
                start = max(job_free[j], machine_free[eligible.machine_id])
                candidate = (
                    start + eligible.duration,
                    -remaining[j],
                    j,
                    eligible.machine_id,
                    start,
                )
                if best is None or candidate < best:
                    best = candidate
        assert best is not None  # some job still has an operation while total is not reached
        end, _, j, machine_id, start = best
        operation = problem.jobs[j].operations[next_operation[j]]
        assignments.append(Assignment(problem.jobs[j].id, operation.id, machine_id, start, end))
        machine_free[machine_id] = end
        job_free[j] = end
        remaining[j] -= min(e.duration for e in operation.eligible_machines)
        next_operation[j] += 1
    assignments.sort(key=lambda a: (a.start, a.machine_id))
    return Solution(tuple(assignments), SolveStatus.FEASIBLE, SOLVER_NAME)
