"""A problem flattened into integer indices, the form every solver works on.

Operations are numbered ``0..n-1`` job by job; machines and jobs by their position.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from services.scheduling.domain.model import (
    Assignment,
    Interval,
    Objective,
    ObjectiveWeights,
    Problem,
)


@dataclass(frozen=True)
class Op:
    index: int
    job: int
    position: int
    job_id: str
    operation_id: str
    # (machine index, duration) for every eligible machine.
    eligible: tuple[tuple[int, int], ...]

    @property
    def min_duration(self) -> int:
        return min(d for _, d in self.eligible)


class Indexed:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.machine_ids = [m.id for m in problem.machines]
        self.machine_index = {m: i for i, m in enumerate(self.machine_ids)}
        self.job_index = {job.id: j for j, job in enumerate(problem.jobs)}
        self.ops: list[Op] = []
        self.job_ops: list[list[int]] = []
        self.op_index: dict[tuple[str, str], int] = {}
        for j, job in enumerate(problem.jobs):
            indices = []
            for p, operation in enumerate(job.operations):
                k = len(self.ops)
                self.ops.append(
                    Op(
                        k,
                        j,
                        p,
                        job.id,
                        operation.id,
                        tuple(
                            (self.machine_index[e.machine_id], e.duration)
                            for e in operation.eligible_machines
                        ),
                    )
                )
                self.op_index[(job.id, operation.id)] = k
                indices.append(k)
            self.job_ops.append(indices)
        n = len(self.ops)
        self.preds: list[list[int]] = [[] for _ in range(n)]
        self.succs: list[list[int]] = [[] for _ in range(n)]
        for indices in self.job_ops:
            for a, b in itertools.pairwise(indices):
                self._arc(a, b)
        for precedence in problem.precedences:
            a = self.op_index[(precedence.before.job_id, precedence.before.operation_id)]
            b = self.op_index[(precedence.after.job_id, precedence.after.operation_id)]
            self._arc(a, b)
        self.release = [job.release for job in problem.jobs]
        self.due = [job.due for job in problem.jobs]
        self.weight = [job.weight for job in problem.jobs]
        self.deadline = [job.deadline for job in problem.jobs]
        self.downtime = [_merged(m.unavailable) for m in problem.machines]
        self.setup: list[dict[tuple[int, int], int]] = [{} for _ in problem.machines]
        for setup in problem.setups:
            if setup.duration > 0 and setup.from_job_id != setup.to_job_id:
                self.setup[self.machine_index[setup.machine_id]][
                    (self.job_index[setup.from_job_id], self.job_index[setup.to_job_id])
                ] = setup.duration
        self.has_setups = any(self.setup)
        self.is_flexible = any(len(op.eligible) > 1 for op in self.ops)

    def _arc(self, a: int, b: int) -> None:
        if b not in self.succs[a]:
            self.succs[a].append(b)
            self.preds[b].append(a)

    @property
    def last_ops(self) -> list[int]:
        return [indices[-1] for indices in self.job_ops]

    def horizon(self) -> int:
        """A time by which some schedule surely ends: everything one after another."""
        total = sum(max(d for _, d in op.eligible) for op in self.ops)
        setups = max((max(s.values(), default=0) for s in self.setup), default=0) * len(self.ops)
        downtime = max((end for spans in self.downtime for _, end in spans), default=0)
        return max(self.release, default=0) + downtime + total + setups + 1

    def trivial_lower_bound(self, objective: Objective, weights: ObjectiveWeights) -> int:
        if objective is Objective.TOTAL_WEIGHTED_TARDINESS:
            return sum(
                w * max(0, r + sum(self.ops[k].min_duration for k in ks) - due)
                for r, due, w, ks in zip(
                    self.release, self.due, self.weight, self.job_ops, strict=True
                )
                if due > 0
            )
        # Longest job (from its release) and the heaviest single-machine load.
        jobs = max(
            r + sum(self.ops[k].min_duration for k in ks)
            for r, ks in zip(self.release, self.job_ops, strict=True)
        )
        load = [0] * len(self.machine_ids)
        for op in self.ops:
            if len(op.eligible) == 1:
                load[op.eligible[0][0]] += op.eligible[0][1]
        makespan = max(jobs, max(load, default=0))
        if objective is Objective.MAKESPAN:
            return makespan
        return weights.makespan * makespan


def _merged(windows: Iterable[Interval]) -> list[tuple[int, int]]:
    """Windows as sorted, disjoint spans: CP-SAT's NoOverlap refuses two that overlap."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((w.start, w.end) for w in windows if w.end > w.start):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def job_tardiness(problem: Problem, ends: dict[str, int]) -> int:
    """Total weighted tardiness given each job's completion time."""
    return sum(job.weight * max(0, ends[job.id] - job.due) for job in problem.jobs if job.due > 0)


def objective_value(
    problem: Problem,
    assignments: Iterable[Assignment],
    objective: Objective,
    weights: ObjectiveWeights | None = None,
) -> int:
    weights = weights or ObjectiveWeights()
    ends: dict[str, int] = {}
    makespan = 0
    for a in assignments:
        ends[a.job_id] = max(ends.get(a.job_id, 0), a.end)
        makespan = max(makespan, a.end)
    if objective is Objective.MAKESPAN:
        return makespan
    tardiness = job_tardiness(problem, ends)
    if objective is Objective.TOTAL_WEIGHTED_TARDINESS:
        return tardiness
    return weights.makespan * makespan + weights.tardiness * tardiness
