"""Checks that a problem is well formed before any solver sees it.

Field paths follow the contract (``problem.jobs[2].operations[0]...``), so callers can
find the offending field.
"""

from __future__ import annotations

from services.runtime.errors import Violations
from services.scheduling.domain.model import Problem

MAX_JOBS = 2_000
MAX_OPERATIONS = 50_000
MAX_DURATION = 10**9
MAX_ID_LENGTH = 128


def validate_problem(problem: Problem, violations: Violations, path: str = "problem") -> None:
    """Add a violation for every malformed part of ``problem``."""
    machine_ids = [m.id for m in problem.machines]
    violations.check(bool(problem.machines), f"{path}.machines", "at least one machine is required")
    for index, machine_id in enumerate(machine_ids):
        _check_id(violations, machine_id, f"{path}.machines[{index}].id")
        if machine_ids.index(machine_id) != index:
            violations.add(f"{path}.machines[{index}].id", f"duplicate machine id {machine_id!r}")
    known_machines = set(machine_ids)

    violations.check(bool(problem.jobs), f"{path}.jobs", "at least one job is required")
    violations.check(
        len(problem.jobs) <= MAX_JOBS, f"{path}.jobs", f"at most {MAX_JOBS} jobs are accepted"
    )
    total_operations = sum(len(job.operations) for job in problem.jobs)
    violations.check(
        total_operations <= MAX_OPERATIONS,
        f"{path}.jobs",
        f"at most {MAX_OPERATIONS} operations in all are accepted, got {total_operations}",
    )
    seen_jobs: set[str] = set()
    for j, job in enumerate(problem.jobs):
        job_path = f"{path}.jobs[{j}]"
        _check_id(violations, job.id, f"{job_path}.id")
        if job.id in seen_jobs:
            violations.add(f"{job_path}.id", f"duplicate job id {job.id!r}")
        seen_jobs.add(job.id)
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
            for e, eligible in enumerate(operation.eligible_machines):
                e_path = f"{op_path}.eligible_machines[{e}]"
                violations.check(
                    eligible.machine_id in known_machines,
                    f"{e_path}.machine_id",
                    f"unknown machine {eligible.machine_id!r}",
                )
                violations.check(
                    0 <= eligible.duration <= MAX_DURATION,
                    f"{e_path}.duration",
                    f"must be between 0 and {MAX_DURATION}",
                )


def _check_id(violations: Violations, value: str, field: str) -> None:
    violations.check(
        0 < len(value) <= MAX_ID_LENGTH, field, f"must be 1 to {MAX_ID_LENGTH} characters"
    )
