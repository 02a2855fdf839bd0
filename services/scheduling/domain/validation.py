"""Checks that a problem is well formed before any solver sees it.

Field paths follow the contract (``problem.jobs[2].operations[0]...``), so callers can
find the offending field.
"""

from __future__ import annotations

from services.runtime.errors import Violations
from services.scheduling.domain.model import ObjectiveWeights, Problem

MAX_JOBS = 2_000
MAX_OPERATIONS = 50_000
MAX_MACHINES = 1_000
MAX_DURATION = 10**9
# Every time (release, due date, deadline, downtime) and the horizon stay below this, so
# weighted objectives cannot overflow 64-bit integers.
MAX_TIME = 10**12
MAX_WEIGHT = 1_000
MAX_PRECEDENCES = 50_000
MAX_SETUP_TIMES = 100_000
MAX_UNAVAILABLE_PER_MACHINE = 1_000
MAX_ID_LENGTH = 128


def validate_problem(
    problem: Problem,
    violations: Violations,
    path: str = "problem",
    *,
    max_operations: int = MAX_OPERATIONS,
) -> None:
    """Add a violation for every malformed part of ``problem``; ``max_operations`` is the
    configured limit (``scheduling.max_operations``), at most MAX_OPERATIONS."""
    machine_ids = [m.id for m in problem.machines]
    violations.check(bool(problem.machines), f"{path}.machines", "at least one machine is required")
    violations.check(
        len(problem.machines) <= MAX_MACHINES,
        f"{path}.machines",
        f"at most {MAX_MACHINES} machines are accepted",
    )
    first_index: dict[str, int] = {}
    for index, machine in enumerate(problem.machines):
        machine_path = f"{path}.machines[{index}]"
        _check_id(violations, machine.id, f"{machine_path}.id")
        if first_index.setdefault(machine.id, index) != index:
            violations.add(f"{machine_path}.id", f"duplicate machine id {machine.id!r}")
        violations.check(
            len(machine.unavailable) <= MAX_UNAVAILABLE_PER_MACHINE,
            f"{machine_path}.unavailable",
            f"at most {MAX_UNAVAILABLE_PER_MACHINE} windows per machine",
        )
        for w, window in enumerate(machine.unavailable[:MAX_UNAVAILABLE_PER_MACHINE]):
            violations.check(
                0 <= window.start < window.end <= MAX_TIME,
                f"{machine_path}.unavailable[{w}]",
                f"needs 0 <= start < end <= {MAX_TIME}",
            )
    known_machines = set(machine_ids)

    violations.check(bool(problem.jobs), f"{path}.jobs", "at least one job is required")
    violations.check(
        len(problem.jobs) <= MAX_JOBS, f"{path}.jobs", f"at most {MAX_JOBS} jobs are accepted"
    )
    total_operations = sum(len(job.operations) for job in problem.jobs)
    violations.check(
        total_operations <= max_operations,
        f"{path}.jobs",
        f"at most {max_operations} operations in all are accepted, got {total_operations}",
    )
    if total_operations > max_operations or len(problem.jobs) > MAX_JOBS:
        return  # too large to look at in detail
    seen_jobs: set[str] = set()
    for j, job in enumerate(problem.jobs):
        job_path = f"{path}.jobs[{j}]"
        _check_id(violations, job.id, f"{job_path}.id")
        if job.id in seen_jobs:
            violations.add(f"{job_path}.id", f"duplicate job id {job.id!r}")
        seen_jobs.add(job.id)
        for name, value in (
            ("release_time", job.release),
            ("due_time", job.due),
            ("deadline", job.deadline),
        ):
            violations.check(
                0 <= value <= MAX_TIME, f"{job_path}.{name}", f"must be between 0 and {MAX_TIME}"
            )
        violations.check(
            1 <= job.weight <= MAX_WEIGHT,
            f"{job_path}.weight",
            f"must be between 1 and {MAX_WEIGHT} (0 means 1)",
        )
        violations.check(bool(job.operations), f"{job_path}.operations", "at least one operation")
        seen_operations: set[str] = set()
        for o, operation in enumerate(job.operations):
            op_path = f"{job_path}.operations[{o}]"
            _check_id(violations, operation.id, f"{op_path}.id")
            if operation.id in seen_operations:
                violations.add(f"{op_path}.id", f"duplicate operation id {operation.id!r}")
            seen_operations.add(operation.id)
            violations.check(
                bool(operation.eligible_machines),
                f"{op_path}.eligible_machines",
                "at least one eligible machine",
            )
            seen_machines: set[str] = set()
            for e, eligible in enumerate(operation.eligible_machines):
                e_path = f"{op_path}.eligible_machines[{e}]"
                violations.check(
                    eligible.machine_id in known_machines,
                    f"{e_path}.machine_id",
                    f"unknown machine {eligible.machine_id!r}",
                )
                if eligible.machine_id in seen_machines:
                    violations.add(
                        f"{e_path}.machine_id", f"machine {eligible.machine_id!r} listed twice"
                    )
                seen_machines.add(eligible.machine_id)
                violations.check(
                    0 < eligible.duration <= MAX_DURATION,
                    f"{e_path}.duration",
                    f"must be between 1 and {MAX_DURATION}; leave it 0 only on an operation "
                    "whose work is described, to have it estimated",
                )
    horizon = sum(
        max((e.duration for e in op.eligible_machines), default=0)
        for job in problem.jobs
        for op in job.operations
    )
    violations.check(
        horizon <= MAX_TIME,
        f"{path}.jobs",
        f"the operations' durations add up to {horizon}, more than {MAX_TIME}",
    )
    operations = {(job.id, op.id) for job in problem.jobs for op in job.operations}
    _check_precedences(problem, operations, violations, path)
    _check_setups(problem, set(machine_ids), seen_jobs, violations, path)


def validate_weights(weights: ObjectiveWeights, violations: Violations, path: str) -> None:
    for name, value in (("makespan", weights.makespan), ("tardiness", weights.tardiness)):
        violations.check(
            0 <= value <= MAX_WEIGHT, f"{path}.{name}", f"must be between 0 and {MAX_WEIGHT}"
        )


def _check_precedences(
    problem: Problem, operations: set[tuple[str, str]], violations: Violations, path: str
) -> None:
    if not violations.check(
        len(problem.precedences) <= MAX_PRECEDENCES,
        f"{path}.precedences",
        f"at most {MAX_PRECEDENCES} precedences are accepted",
    ):
        return
    ok = True
    for p, precedence in enumerate(problem.precedences):
        for end, ref in (("before", precedence.before), ("after", precedence.after)):
            if (ref.job_id, ref.operation_id) not in operations:
                ok = False
                violations.add(
                    f"{path}.precedences[{p}].{end}",
                    f"unknown operation {ref.operation_id!r} of job {ref.job_id!r}",
                )
    if not ok or not problem.precedences:
        return
    cycle = _find_cycle(problem)
    if cycle is not None:
        index, members = cycle
        shown = " -> ".join(f"{j}/{o}" for j, o in members[:10])
        violations.add(
            f"{path}.precedences[{index}]",
            f"precedences form a cycle (with the order within jobs): {shown}",
        )


def _find_cycle(problem: Problem) -> tuple[int, list[tuple[str, str]]] | None:
    """The first extra precedence on a cycle and the operations left in cycles, if any."""
    succs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    indegree: dict[tuple[str, str], int] = {}
    for job in problem.jobs:
        for op in job.operations:
            indegree[(job.id, op.id)] = 0
    arcs = []
    for job in problem.jobs:
        for a, b in zip(job.operations, job.operations[1:], strict=False):
            arcs.append(((job.id, a.id), (job.id, b.id)))
    for precedence in problem.precedences:
        arcs.append(
            (
                (precedence.before.job_id, precedence.before.operation_id),
                (precedence.after.job_id, precedence.after.operation_id),
            )
        )
    for before, after in arcs:
        succs.setdefault(before, []).append(after)
        indegree[after] += 1
    stack = [k for k, d in indegree.items() if d == 0]
    while stack:
        k = stack.pop()
        for s in succs.get(k, ()):
            indegree[s] -= 1
            if indegree[s] == 0:
                stack.append(s)
    left = {k for k, d in indegree.items() if d > 0}
    if not left:
        return None
    for index, precedence in enumerate(problem.precedences):
        before = (precedence.before.job_id, precedence.before.operation_id)
        after = (precedence.after.job_id, precedence.after.operation_id)
        if before in left and after in left:
            return index, sorted(left)
    return 0, sorted(left)


def _check_setups(
    problem: Problem,
    machines: set[str],
    jobs: set[str],
    violations: Violations,
    path: str,
) -> None:
    if not violations.check(
        len(problem.setups) <= MAX_SETUP_TIMES,
        f"{path}.setup_times",
        f"at most {MAX_SETUP_TIMES} setup times are accepted",
    ):
        return
    seen: set[tuple[str, str, str]] = set()
    for s, setup in enumerate(problem.setups):
        s_path = f"{path}.setup_times[{s}]"
        violations.check(
            setup.machine_id in machines,
            f"{s_path}.machine_id",
            f"unknown machine {setup.machine_id!r}",
        )
        for name, job_id in (("from_job_id", setup.from_job_id), ("to_job_id", setup.to_job_id)):
            violations.check(job_id in jobs, f"{s_path}.{name}", f"unknown job {job_id!r}")
        violations.check(
            0 <= setup.duration <= MAX_DURATION,
            f"{s_path}.duration",
            f"must be between 0 and {MAX_DURATION}",
        )
        key = (setup.machine_id, setup.from_job_id, setup.to_job_id)
        if key in seen:
            violations.add(s_path, "duplicate setup time for this machine and pair of jobs")
        seen.add(key)


def _check_id(violations: Violations, value: str, field: str) -> None:
    violations.check(
        0 < len(value) <= MAX_ID_LENGTH, field, f"must be 1 to {MAX_ID_LENGTH} characters"
    )
