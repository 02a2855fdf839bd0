"""Checking a schedule against its problem: every violated constraint, not just the first."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.scheduling.domain.model import Assignment, OperationRef, Problem


class ConstraintKind(StrEnum):
    COVERAGE = "coverage"
    ELIGIBILITY = "eligibility"
    DURATION = "duration"
    RELEASE = "release"
    PRECEDENCE = "precedence"
    MACHINE_CAPACITY = "machine_capacity"
    UNAVAILABILITY = "unavailability"
    DEADLINE = "deadline"


@dataclass(frozen=True)
class Violation:
    kind: ConstraintKind
    description: str
    operations: tuple[OperationRef, ...] = ()
    machine_id: str = ""


# More than this many violations are summarised: a wildly wrong schedule should not
# produce a reply larger than the message size limit.
MAX_VIOLATIONS = 1000


def check_schedule(problem: Problem, assignments: Iterable[Assignment]) -> list[Violation]:
    found: list[Violation] = []
    assignments = list(assignments)
    expected = {
        (job.id, op.id): {e.machine_id: e.duration for e in op.eligible_machines}
        for job in problem.jobs
        for op in job.operations
    }
    placed: dict[tuple[str, str], Assignment] = {}
    for a in assignments:
        key = (a.job_id, a.operation_id)
        ref = OperationRef(*key)
        if key not in expected:
            found.append(
                Violation(ConstraintKind.COVERAGE, f"operation {key} is not in the problem", (ref,))
            )
            continue
        if key in placed:
            found.append(
                Violation(ConstraintKind.COVERAGE, f"operation {key} appears twice", (ref,))
            )
            continue
        placed[key] = a
        durations = expected[key]
        if a.machine_id not in durations:
            found.append(
                Violation(
                    ConstraintKind.ELIGIBILITY,
                    f"operation {key} cannot run on machine {a.machine_id!r}",
                    (ref,),
                    a.machine_id,
                )
            )
        elif a.end - a.start != durations[a.machine_id]:
            found.append(
                Violation(
                    ConstraintKind.DURATION,
                    f"operation {key} lasts {a.end - a.start}, needs {durations[a.machine_id]}",
                    (ref,),
                    a.machine_id,
                )
            )
    for key in expected.keys() - placed.keys():
        found.append(
            Violation(ConstraintKind.COVERAGE, f"operation {key} is missing", (OperationRef(*key),))
        )
    for job in problem.jobs:
        chain = [placed.get((job.id, op.id)) for op in job.operations]
        for placement in chain:
            if placement is not None and placement.start < max(0, job.release):
                found.append(
                    Violation(
                        ConstraintKind.RELEASE,
                        f"operation {(placement.job_id, placement.operation_id)} starts at "
                        f"{placement.start}, before {max(0, job.release)}",
                        (OperationRef(placement.job_id, placement.operation_id),),
                    )
                )
        present = [a for a in chain if a is not None]
        for a, b in itertools.pairwise(present):
            if b.start < a.end:
                found.append(_order(a, b, f"job {job.id!r} out of order"))
        if job.deadline > 0 and present and len(present) == len(chain):
            end = present[-1].end
            if end > job.deadline:
                found.append(
                    Violation(
                        ConstraintKind.DEADLINE,
                        f"job {job.id!r} ends at {end}, after its deadline {job.deadline}",
                        (OperationRef(present[-1].job_id, present[-1].operation_id),),
                    )
                )
    for precedence in problem.precedences:
        first = placed.get((precedence.before.job_id, precedence.before.operation_id))
        then = placed.get((precedence.after.job_id, precedence.after.operation_id))
        if first is not None and then is not None and then.start < first.end:
            found.append(_order(first, then, "precedence broken"))
    found.extend(_machines(problem, list(placed.values())))
    if len(found) > MAX_VIOLATIONS:
        more = len(found) - MAX_VIOLATIONS
        found = found[:MAX_VIOLATIONS]
        found.append(Violation(ConstraintKind.COVERAGE, f"... and {more} more violations"))
    return found


def _order(a: Assignment, b: Assignment, what: str) -> Violation:
    return Violation(
        ConstraintKind.PRECEDENCE,
        f"{what}: {(b.job_id, b.operation_id)} starts at {b.start}, before "
        f"{(a.job_id, a.operation_id)} ends at {a.end}",
        (OperationRef(a.job_id, a.operation_id), OperationRef(b.job_id, b.operation_id)),
    )


def _machines(problem: Problem, placed: list[Assignment]) -> list[Violation]:
    found: list[Violation] = []
    setup = {(s.machine_id, s.from_job_id, s.to_job_id): s.duration for s in problem.setups}
    by_machine: dict[str, list[Assignment]] = defaultdict(list)
    for a in placed:
        if a.end > a.start:
            by_machine[a.machine_id].append(a)
    machines_with_setups = {machine_id for machine_id, _, _ in setup}
    for machine in problem.machines:
        items = sorted(by_machine.get(machine.id, []), key=lambda a: (a.start, a.end))
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                gap = 0 if a.job_id == b.job_id else setup.get((machine.id, a.job_id, b.job_id), 0)
                if b.start >= a.end and machine.id not in machines_with_setups:
                    break  # sorted by start: later ones start later still
                if b.start < a.end + gap:
                    what = "overlap" if b.start < a.end else f"are closer than the setup {gap}"
                    found.append(
                        Violation(
                            ConstraintKind.MACHINE_CAPACITY,
                            f"{(a.job_id, a.operation_id)} and {(b.job_id, b.operation_id)} "
                            f"{what} on machine {machine.id!r}",
                            (
                                OperationRef(a.job_id, a.operation_id),
                                OperationRef(b.job_id, b.operation_id),
                            ),
                            machine.id,
                        )
                    )
            for down in machine.unavailable:
                if a.start < down.end and down.start < a.end:
                    found.append(
                        Violation(
                            ConstraintKind.UNAVAILABILITY,
                            f"{(a.job_id, a.operation_id)} runs while machine {machine.id!r} is "
                            f"unavailable [{down.start}, {down.end})",
                            (OperationRef(a.job_id, a.operation_id),),
                            machine.id,
                        )
                    )
    return found
