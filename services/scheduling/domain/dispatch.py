"""Constructive dispatching heuristics: always feasible, fast, a warm start for solvers.

List scheduling: at each step, among the operations whose predecessors are all placed,
and every machine eligible for them, place the pair that the priority rule prefers
(for example the one that would finish first, ties to the job with the most work
remaining, which keeps long jobs from being starved). Each placement is the earliest
start that respects release dates, machine downtime, operations fixed in advance and
sequence-dependent setups. Hard deadlines are not looked at: the solver deals with them.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Mapping

from services.scheduling.domain.indexed import Indexed, objective_value
from services.scheduling.domain.model import (
    Assignment,
    Objective,
    ObjectiveWeights,
    Problem,
    Solution,
    SolveStatus,
)

SOLVER_NAME = "dispatch:ect-mwkr"

# A rule maps (start, end, remaining work, due date, job index) to a sort key; lowest wins.
Rule = Callable[[int, int, int, int, int], tuple[int, ...]]
RULES: dict[str, Rule] = {
    "ect-mwkr": lambda s, e, rem, due, j: (e, -rem, j),
    "est-mwkr": lambda s, e, rem, due, j: (s, -rem, e, j),
    "ect-edd": lambda s, e, rem, due, j: (e, due - rem if due else 1 << 62, j),
}


def dispatch(problem: Problem) -> Solution:
    """The earliest-completion / most-work-remaining schedule of ``problem``."""
    ix = Indexed(problem)
    assignments = dispatch_indexed(ix, RULES["ect-mwkr"])
    return Solution(
        assignments,
        SolveStatus.FEASIBLE,
        SOLVER_NAME,
        objective_value=objective_value(problem, assignments, Objective.MAKESPAN),
    )


def best_dispatch(
    ix: Indexed,
    objective: Objective,
    weights: ObjectiveWeights,
    fixed: Mapping[int, Assignment] | None = None,
    rules: tuple[str, ...] = tuple(RULES),
    not_before: int = 0,
) -> tuple[str, tuple[Assignment, ...], int]:
    """The best schedule over several rules: (rule name, assignments, objective value)."""
    best: tuple[str, tuple[Assignment, ...], int] | None = None
    for name in rules:
        assignments = dispatch_indexed(ix, RULES[name], fixed, not_before)
        value = objective_value(ix.problem, assignments, objective, weights)
        if best is None or value < best[2]:
            best = (name, assignments, value)
    assert best is not None
    return best


def dispatch_indexed(
    ix: Indexed,
    rule: Rule,
    fixed: Mapping[int, Assignment] | None = None,
    not_before: int = 0,
) -> tuple[Assignment, ...]:
    """One list schedule; operations in ``fixed`` keep their given placement."""
    fixed = fixed or {}
    n = len(ix.ops)
    machines = len(ix.machine_ids)
    # Busy blocks per machine: (start, end, job or -1 for downtime), sorted by start.
    busy: list[list[tuple[int, int, int]]] = [
        [(s, e, -1) for s, e in spans] for spans in ix.downtime
    ]
    for k, a in fixed.items():
        if a.end > a.start:
            busy[ix.machine_index[a.machine_id]].append((a.start, a.end, ix.ops[k].job))
    for blocks in busy:
        blocks.sort()
    busy_ends_max = [_running_max([b[1] for b in blocks]) for blocks in busy]
    machine_free = [0] * machines
    # Setups hold between any two operations in that order on a machine (not only
    # neighbours), so each machine remembers the latest end of every job placed on it.
    setup_into: list[dict[int, list[tuple[int, int]]]] = [{} for _ in range(machines)]
    for m, pairs in enumerate(ix.setup):
        for (src, dst), duration in pairs.items():
            setup_into[m].setdefault(dst, []).append((src, duration))
    job_end_on: list[dict[int, int]] = [{} for _ in range(machines)]

    end_of: list[int | None] = [None] * n
    placed: list[Assignment | None] = [None] * n
    remaining = [sum(ix.ops[k].min_duration for k in ks) for ks in ix.job_ops]
    indegree = [len(p) for p in ix.preds]
    ready: set[int] = set()
    machines_of = [frozenset(m for m, _ in op.eligible) for op in ix.ops]
    ready_on: list[set[int]] = [set() for _ in range(machines)]
    done = 0

    def make_ready(k: int) -> None:
        ready.add(k)
        for m in machines_of[k]:
            ready_on[m].add(k)

    def finish(k: int, assignment: Assignment) -> None:
        nonlocal done
        placed[k] = assignment
        end_of[k] = assignment.end
        remaining[ix.ops[k].job] -= ix.ops[k].min_duration
        done += 1
        for s in ix.succs[k]:
            indegree[s] -= 1
            if indegree[s] == 0:
                make_ready(s)

    for k in range(n):
        if indegree[k] == 0:
            make_ready(k)
    # Each ready operation's best (key, machine, start, duration) stays valid until a
    # machine it may use gets busier, so only those are recomputed after a placement.
    best_of: dict[int, tuple[tuple[int, ...], int, int, int]] = {}
    heap: list[tuple[tuple[int, ...], int, int]] = []
    version = [0] * n
    evaluated: set[int] = set()

    def evaluate(k: int) -> tuple[tuple[int, ...], int, int, int]:
        op = ix.ops[k]
        j = op.job
        earliest = max(ix.release[j], not_before)
        for p in ix.preds[k]:
            earliest = max(earliest, end_of[p] or 0)
        best: tuple[tuple[int, ...], int, int, int] | None = None
        for m, d in op.eligible:
            start = max(earliest, machine_free[m])
            for other, duration in setup_into[m].get(j, ()):
                if other in job_end_on[m]:
                    start = max(start, job_end_on[m][other] + duration)
            if busy[m]:
                start = _fit(busy[m], busy_ends_max[m], start, d, j, ix.setup[m])
            key = rule(start, start + d, remaining[j], ix.due[j], j)
            if best is None or key < best[0]:
                best = (key, m, start, d)
        assert best is not None
        return best

    while done < n:
        # Fixed operations count as placed as soon as they become ready.
        for k in [k for k in ready if k in fixed] if fixed else ():
            ready.discard(k)
            for mm in machines_of[k]:
                ready_on[mm].discard(k)
            finish(k, fixed[k])
        if done == n:
            break
        assert ready, "the precedence graph has a cycle"
        for k in ready - evaluated:
            best_of[k] = evaluate(k)
            version[k] += 1
            heapq.heappush(heap, (best_of[k][0], k, version[k]))
            evaluated.add(k)
        while True:
            _, k, seen = heapq.heappop(heap)
            if seen == version[k] and k in ready:
                break
        _, m, start, d = best_of.pop(k)
        evaluated.discard(k)
        op = ix.ops[k]
        ready.discard(k)
        for mm in machines_of[k]:
            ready_on[mm].discard(k)
        finish(k, Assignment(op.job_id, op.operation_id, ix.machine_ids[m], start, start + d))
        if d > 0:
            machine_free[m] = max(machine_free[m], start + d)
            job_end_on[m][op.job] = max(job_end_on[m].get(op.job, 0), start + d)
            # Operations that may use this machine must be looked at again.
            evaluated.difference_update(ready_on[m])
    result = [a for a in placed if a is not None]
    result.sort(key=lambda a: (a.start, a.machine_id))
    return tuple(result)


def _running_max(values: list[int]) -> list[int]:
    out, top = [], -(1 << 62)
    for v in values:
        top = max(top, v)
        out.append(top)
    return out


def _fit(
    blocks: list[tuple[int, int, int]],
    ends_max: list[int],
    start: int,
    duration: int,
    job: int,
    setup: dict[tuple[int, int], int],
) -> int:
    """Earliest start at or after ``start`` that clears every busy block (with setups)."""
    # Blocks that end (with the largest possible setup) before ``start`` cannot matter.
    slack = max(setup.values(), default=0)
    i = bisect.bisect_left(ends_max, start - slack)
    while i < len(blocks):
        b_start, b_end, b_job = blocks[i]
        before = setup.get((job, b_job), 0) if b_job >= 0 else 0
        after = setup.get((b_job, job), 0) if b_job >= 0 else 0
        if start + duration + before <= b_start:
            # Fits before this block; later blocks start no earlier.
            break
        start = max(start, b_end + after)
        i += 1
    return start
