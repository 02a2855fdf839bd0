"""The CP-SAT model of a (flexible) job shop, full or restricted to a neighbourhood.

One start and end per operation; one interval per eligible machine (optional when
there is a choice) in that machine's NoOverlap together with its downtime; job order and
extra precedences as linear constraints; sequence-dependent setups as ordering
literals between pairs that need them. Large-neighbourhood search restricts the model:
operations outside the neighbourhood keep their machine, and consecutive ones on a
machine keep their order (they may still move in time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ortools.sat.python import cp_model

from services.scheduling.domain.indexed import Indexed
from services.scheduling.domain.model import Assignment, Objective, ObjectiveWeights

# Past this many setup pairs the model grows too large to be useful; setups between
# the pairs left out are still enforced by the dispatcher's schedules only.
MAX_SETUP_PAIRS = 200_000


@dataclass
class ModelOptions:
    objective: Objective
    weights: ObjectiveWeights
    horizon: int
    # Operations placed in advance (started or finished): exact machine and start.
    fixed: Mapping[int, Assignment]
    # Operation -> only machine it may use (neighbourhood search keeps machines).
    machine_of: Mapping[int, int] | None = None
    # Pairs (a, b) on one machine where a must come before b.
    sequence: Iterable[tuple[int, int]] = ()
    # Operation -> (machine, start) of a previous schedule; each moved one costs.
    original: Mapping[int, tuple[int, int]] | None = None
    moved_weight: int = 0
    objective_upper: int | None = None
    # Break ties between schedules of equal objective by the sum of job ends: a
    # neighbourhood that cannot improve the objective still compacts the schedule,
    # which gives the next neighbourhoods room to improve it.
    tie_break_ends: bool = False
    objective_lower: int = 0
    # Machines whose order ``sequence`` fixes completely: no NoOverlap needed there.
    sequenced_machines: frozenset[int] = frozenset()
    # Operations not fixed start no earlier than this.
    not_before: int = 0


class JobShopModel:
    def __init__(self, ix: Indexed, options: ModelOptions) -> None:
        self.ix = ix
        self.options = options
        model = self.model = cp_model.CpModel()
        horizon = options.horizon
        heads, tails = _heads_and_tails(ix)
        n = len(ix.ops)
        self.start: list[cp_model.IntVar] = []
        self.end: list[cp_model.IntVar] = []
        # (operation, machine) -> presence literal (None when the machine is certain).
        self.presence: dict[tuple[int, int], cp_model.IntVar | None] = {}
        self.choices: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
        per_machine: list[list[cp_model.IntervalVar]] = [[] for _ in ix.machine_ids]
        on_machine: list[list[tuple[int, cp_model.IntVar | None, int]]] = [
            [] for _ in ix.machine_ids
        ]
        for k, op in enumerate(ix.ops):
            fixed = options.fixed.get(k)
            if fixed is not None:
                m = ix.machine_index[fixed.machine_id]
                s = model.new_constant(fixed.start)
                e = model.new_constant(fixed.end)
                self.start.append(s)
                self.end.append(e)
                self.presence[(k, m)] = None
                if fixed.end > fixed.start:
                    per_machine[m].append(
                        model.new_fixed_size_interval_var(fixed.start, fixed.end - fixed.start, "")
                    )
                on_machine[m].append((k, None, fixed.end - fixed.start))
                continue
            eligible = op.eligible
            if options.machine_of is not None and k in options.machine_of:
                m_only = options.machine_of[k]
                eligible = tuple((m, d) for m, d in eligible if m == m_only)
            lo = max(heads[k], options.not_before)
            hi = max(lo, horizon - tails[k])
            s = model.new_int_var(lo, hi, f"s{k}")
            e = model.new_int_var(lo, horizon, f"e{k}")
            self.start.append(s)
            self.end.append(e)
            if len(eligible) == 1:
                m, d = eligible[0]
                model.add(e == s + d)
                per_machine[m].append(model.new_fixed_size_interval_var(s, d, ""))
                self.presence[(k, m)] = None
                on_machine[m].append((k, None, d))
            else:
                literals = []
                for m, d in eligible:
                    present = model.new_bool_var(f"p{k}_{m}")
                    literals.append(present)
                    model.add(e == s + d).only_enforce_if(present)
                    per_machine[m].append(
                        model.new_optional_fixed_size_interval_var(s, d, present, "")
                    )
                    self.presence[(k, m)] = present
                    self.choices.setdefault(k, []).append((m, present))
                    on_machine[m].append((k, present, d))
                model.add_exactly_one(literals)
        for m, spans in enumerate(ix.downtime):
            for a, b in spans:
                per_machine[m].append(model.new_fixed_size_interval_var(a, b - a, ""))
        for m, intervals in enumerate(per_machine):
            if len(intervals) > 1 and m not in options.sequenced_machines:
                model.add_no_overlap(intervals)
        for a in range(n):
            for b in ix.succs[a]:
                model.add(self.start[b] >= self.end[a])
        for a, b in options.sequence:
            m = self._machine_of_pair(a, b)
            model.add(
                self.start[b] >= self.end[a] + ix.setup[m].get((ix.ops[a].job, ix.ops[b].job), 0)
            )
        if ix.has_setups:
            self._add_setups(on_machine)
        job_ends = [self.end[ks[-1]] for ks in ix.job_ops]
        for j, deadline in enumerate(ix.deadline):
            if deadline > 0:
                model.add(job_ends[j] <= deadline)
        self.objective: cp_model.IntVar = self._objective(job_ends)
        if options.objective_upper is not None:
            model.add(self.objective <= options.objective_upper)

    def _machine_of_pair(self, a: int, b: int) -> int:
        fixed = self.options.fixed
        if a in fixed:
            return self.ix.machine_index[fixed[a].machine_id]
        assert self.options.machine_of is not None
        return self.options.machine_of[a]

    def _add_setups(self, on_machine: list[list[tuple[int, cp_model.IntVar | None, int]]]) -> None:
        ix, model = self.ix, self.model
        pairs = 0
        for m, entries in enumerate(on_machine):
            setup = ix.setup[m]
            if not setup:
                continue
            # Setups separate operations that take machine time; empty ones fit anywhere.
            entries = [e for e in entries if e[2] > 0]
            for i, (a, pa, _) in enumerate(entries):
                for b, pb, _ in entries[i + 1 :]:
                    ja, jb = ix.ops[a].job, ix.ops[b].job
                    ab, ba = setup.get((ja, jb), 0), setup.get((jb, ja), 0)
                    if not (ab or ba):
                        continue
                    pairs += 1
                    if pairs > MAX_SETUP_PAIRS:
                        return
                    both = [lit for lit in (pa, pb) if lit is not None]
                    first = model.new_bool_var("")
                    model.add(self.start[b] >= self.end[a] + ab).only_enforce_if([first, *both])
                    model.add(self.start[a] >= self.end[b] + ba).only_enforce_if(
                        [first.Not(), *both]
                    )

    def _objective(self, job_ends: list[cp_model.IntVar]) -> cp_model.IntVar:
        ix, options, model = self.ix, self.options, self.model
        horizon = options.horizon
        terms: list[cp_model.LinearExprT] = []
        scale = 0  # the largest value the objective can take
        self.lateness: dict[int, cp_model.IntVar] = {}
        self.moved: dict[int, tuple[cp_model.IntVar, int, int]] = {}
        objective = options.objective
        if objective in (Objective.MAKESPAN, Objective.WEIGHTED_SUM):
            makespan = model.new_int_var(0, horizon, "makespan")
            for e in job_ends:
                model.add(makespan >= e)
            self.makespan = makespan
            weight = 1 if objective is Objective.MAKESPAN else options.weights.makespan
            terms.append(weight * makespan)
            scale += weight * horizon
        if objective in (Objective.TOTAL_WEIGHTED_TARDINESS, Objective.WEIGHTED_SUM):
            weight = (
                1 if objective is Objective.TOTAL_WEIGHTED_TARDINESS else options.weights.tardiness
            )
            for j, e in enumerate(job_ends):
                if ix.due[j] > 0:
                    late = model.new_int_var(0, horizon, f"t{j}")
                    self.lateness[j] = late
                    model.add(late >= e - ix.due[j])
                    terms.append(weight * ix.weight[j] * late)
                    scale += weight * ix.weight[j] * horizon
        if options.original and options.moved_weight:
            for k, (m, start) in options.original.items():
                if k in options.fixed:
                    continue
                moved = model.new_bool_var(f"moved{k}")
                self.moved[k] = (moved, m, start)
                model.add(self.start[k] == start).only_enforce_if(moved.Not())
                if (k, m) not in self.presence:
                    model.add(moved == 1)  # its old machine is no longer an option
                elif (literal := self.presence[(k, m)]) is not None:
                    model.add_implication(moved.Not(), literal)
                terms.append(options.moved_weight * moved)
                scale += options.moved_weight
        total = sum(terms) if terms else model.new_constant(0)
        upper = max(options.objective_lower, min(scale, 1 << 62))
        bound = model.new_int_var(options.objective_lower, upper, "objective")
        model.add(bound == total)
        tie_scale = len(job_ends) * (horizon + 1) + 1
        if options.tie_break_ends and (upper + 1) * tie_scale < 1 << 62:
            model.minimize(tie_scale * bound + sum(job_ends))
        else:
            model.minimize(bound)
        return bound

    def hint(self, assignments: Iterable[Assignment], objective: int | None = None) -> None:
        self.hint_objective = objective
        self._hint(assignments)

    def _hint(self, assignments: Iterable[Assignment]) -> None:
        ix, model = self.ix, self.model
        model.clear_hints()  # type: ignore[no-untyped-call]
        assignments = tuple(assignments)
        for a in assignments:
            k = ix.op_index[(a.job_id, a.operation_id)]
            if k in self.options.fixed:
                continue
            model.add_hint(self.start[k], a.start)
            model.add_hint(self.end[k], a.end)
            m = ix.machine_index[a.machine_id]
            for mm, literal in self.choices.get(k, ()):
                model.add_hint(literal, mm == m)
        makespan = max((a.end for a in assignments), default=0)
        if hasattr(self, "makespan"):
            model.add_hint(self.makespan, makespan)
        # A complete hint is taken as a first solution at once; an incomplete one must be
        # completed by search, which can fail on large models.
        ends: dict[int, int] = {}
        placed: dict[int, Assignment] = {}
        for a in assignments:
            k = ix.op_index[(a.job_id, a.operation_id)]
            placed[k] = a
            job = ix.ops[k].job
            ends[job] = max(ends.get(job, 0), a.end)
        for j, late in self.lateness.items():
            model.add_hint(late, max(0, ends.get(j, 0) - ix.due[j]))
        for k, (moved, m, start) in self.moved.items():
            was = placed.get(k)
            model.add_hint(
                moved,
                was is None or ix.machine_index[was.machine_id] != m or was.start != start,
            )
        if self.hint_objective is not None:
            model.add_hint(self.objective, self.hint_objective)

    def extract(self, values: Callable[[cp_model.IntVar], int]) -> tuple[Assignment, ...]:
        ix = self.ix
        chosen: dict[int, int] = {}
        for (k, m), literal in self.presence.items():
            if literal is None or values(literal):
                chosen[k] = m
        result = []
        for k, op in enumerate(ix.ops):
            fixed = self.options.fixed.get(k)
            if fixed is not None:
                result.append(fixed)
                continue
            result.append(
                Assignment(
                    op.job_id,
                    op.operation_id,
                    ix.machine_ids[chosen[k]],
                    values(self.start[k]),
                    values(self.end[k]),
                )
            )
        result.sort(key=lambda a: (a.start, a.machine_id))
        return tuple(result)


def _heads_and_tails(ix: Indexed) -> tuple[list[int], list[int]]:
    """Earliest start and least remaining processing after each operation (min durations)."""
    n = len(ix.ops)
    order = _topological(ix)
    heads = [0] * n
    for k in order:
        head = max(heads[k], ix.release[ix.ops[k].job])
        heads[k] = head
        for s in ix.succs[k]:
            heads[s] = max(heads[s], head + ix.ops[k].min_duration)
    tails = [0] * n
    for k in reversed(order):
        tail = ix.ops[k].min_duration
        for s in ix.succs[k]:
            tail = max(tail, ix.ops[k].min_duration + tails[s])
        tails[k] = tail
    # ``tails`` includes the operation itself.
    return heads, tails


def _topological(ix: Indexed) -> list[int]:
    indegree = [len(p) for p in ix.preds]
    stack = [k for k in range(len(ix.ops)) if indegree[k] == 0]
    order = []
    while stack:
        k = stack.pop()
        order.append(k)
        for s in ix.succs[k]:
            indegree[s] -= 1
            if indegree[s] == 0:
                stack.append(s)
    return order


class _Improvements(cp_model.CpSolverSolutionCallback):
    def __init__(
        self, model: JobShopModel, on_solution: Callable[[int, tuple[Assignment, ...]], None]
    ) -> None:
        super().__init__()
        self._model = model
        self._on_solution = on_solution

    def on_solution_callback(self) -> None:
        self._on_solution(int(self.ObjectiveValue()), self._model.extract(self.Value))


@dataclass
class RunResult:
    status: cp_model.CpSolverStatus
    objective: int | None
    bound: int
    assignments: tuple[Assignment, ...] | None


def run(
    model: JobShopModel,
    *,
    time_limit_s: float,
    workers: int,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    on_solution: Callable[[int, tuple[Assignment, ...]], None] | None = None,
    parameters: Mapping[str, object] | None = None,
) -> RunResult:
    """Solve ``model`` within the time limit, stopping early when ``should_stop`` says so."""
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = seed
    for key, value in (parameters or {}).items():
        if isinstance(value, (list, tuple)):
            getattr(solver.parameters, key).extend(value)  # a repeated field
        else:
            setattr(solver.parameters, key, value)
    finished = threading.Event()
    watcher = None
    if should_stop is not None:

        def watch() -> None:
            while not finished.wait(0.05):
                if should_stop():
                    solver.stop_search()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        callback = _Improvements(model, on_solution) if on_solution else None
        status = solver.solve(model.model, callback)
    finally:
        finished.set()
        if watcher is not None:
            watcher.join()
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return RunResult(
            status,
            round(solver.objective_value),
            round(solver.best_objective_bound),
            model.extract(solver.value),
        )
    return RunResult(status, None, round(solver.best_objective_bound), None)
