"""An independent feasibility checker for schedules, written apart from the service.

It reads the problem as given and the placements as returned (anything with ``job_id``,
``operation_id``, ``machine_id``, ``start`` and ``end``: domain assignments or contract
messages alike), and lists every hard constraint the schedule breaks.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from services.scheduling.domain.model import Problem


class Placement(Protocol):
    @property
    def job_id(self) -> str: ...
    @property
    def operation_id(self) -> str: ...
    @property
    def machine_id(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


def violations(problem: Problem, placements: Iterable[Placement]) -> list[str]:
    found: list[str] = []
    placements = list(placements)
    durations = {
        (job.id, op.id): {e.machine_id: e.duration for e in op.eligible_machines}
        for job in problem.jobs
        for op in job.operations
    }
    placed: dict[tuple[str, str], Placement] = {}
    for p in placements:
        key = (p.job_id, p.operation_id)
        if key in placed:
            found.append(f"{key} placed twice")
        placed[key] = p
    for key in durations.keys() - placed.keys():
        found.append(f"{key} not placed")
    for key in placed.keys() - durations.keys():
        found.append(f"{key} is not in the problem")
    if found:
        return found
    jobs = {job.id: job for job in problem.jobs}
    for key, p in placed.items():
        if p.machine_id not in durations[key]:
            found.append(f"{key} on machine {p.machine_id} that is not eligible")
        elif p.end - p.start != durations[key][p.machine_id]:
            found.append(f"{key} lasts {p.end - p.start}, not {durations[key][p.machine_id]}")
        if p.start < max(0, jobs[key[0]].release):
            found.append(f"{key} starts at {p.start} before its job's release")
    for job in problem.jobs:
        chain = [placed[(job.id, op.id)] for op in job.operations]
        for a, b in itertools.pairwise(chain):
            if b.start < a.end:
                found.append(f"job {job.id}: {b.operation_id} starts before {a.operation_id} ends")
        if job.deadline > 0 and chain[-1].end > job.deadline:
            found.append(f"job {job.id} ends at {chain[-1].end}, after its deadline")
    for precedence in problem.precedences:
        a = placed[(precedence.before.job_id, precedence.before.operation_id)]
        b = placed[(precedence.after.job_id, precedence.after.operation_id)]
        if b.start < a.end:
            found.append(f"precedence {precedence} broken")
    setup = {(s.machine_id, s.from_job_id, s.to_job_id): s.duration for s in problem.setups}
    by_machine: dict[str, list[Placement]] = defaultdict(list)
    for p in placements:
        if p.end > p.start:
            by_machine[p.machine_id].append(p)
    for machine in problem.machines:
        items = sorted(by_machine[machine.id], key=lambda p: p.start)
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                gap = 0 if a.job_id == b.job_id else setup.get((machine.id, a.job_id, b.job_id), 0)
                if b.start < a.end + gap:
                    found.append(
                        f"machine {machine.id}: {a.job_id}/{a.operation_id} and "
                        f"{b.job_id}/{b.operation_id} overlap (setup {gap})"
                    )
            for down in machine.unavailable:
                if a.start < down.end and down.start < a.end:
                    found.append(
                        f"machine {machine.id}: {a.job_id}/{a.operation_id} runs "
                        f"while the machine is down"
                    )
    return found


def assert_feasible(problem: Problem, placements: Iterable[Placement]) -> None:
    found = violations(problem, placements)
    assert not found, found
