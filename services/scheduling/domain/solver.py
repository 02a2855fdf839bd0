"""The scheduling solver: dispatch first, CP-SAT next, large-neighbourhood search last.

1. Dispatching rules give a feasible schedule at once (reported before anything else).
2. CP-SAT solves the full model, warm-started from that schedule, with the horizon
   cut to the heuristic's makespan; on small problems it proves optimality here, and
   its bound is the lower bound reported.
3. Large-neighbourhood search improves the incumbent until the time is up: it frees a
   part of the schedule (some machines, some jobs, or a window of consecutive
   operations), keeps the machine and relative order of everything else, and re-solves
   that smaller model with CP-SAT for a short slice. Neighbourhoods grow when they are
   solved to optimality and shrink when they time out.

The whole call, model building included, keeps to the time limit: every CP-SAT call
gets only what is left of it, and nothing starts when too little is left.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from services.scheduling.domain import cpsat
from services.scheduling.domain.dispatch import best_dispatch
from services.scheduling.domain.indexed import Indexed, objective_value
from services.scheduling.domain.model import (
    Assignment,
    Objective,
    ObjectiveWeights,
    Problem,
    Solution,
    SolveStatus,
)

SOLVER_NAME = "cpsat-lns"
# Time kept back at the end of a call (a share of the limit, within these bounds), so
# threads that a busy machine schedules late still finish inside the promised limit.
RESERVE_S = (0.05, 0.3)
RESERVE_SHARE = 0.03

# Small neighbourhood models solve faster without LP relaxation and probing.
LNS_PARAMETERS = {"linearization_level": 0, "cp_model_probing_level": 0, "symmetry_level": 0}

# Up to this many operations CP-SAT on the full model does better with all the time than
# with neighbourhood search after it (measured on the 10x10 to 15x15 benchmark instances).
SMALL_PROBLEM_OPERATIONS = 250
# Past this many, a neighbourhood model (which keeps every operation) takes longer to
# load than a slice lasts; the full model, warm-started, does better with all the time.
LARGE_PROBLEM_OPERATIONS = 500

DISPATCH_RULES = ("ect-mwkr", "est-mwkr", "ect-edd")

OperationKey = tuple[str, str]
Progress = Callable[[Solution], None]


@dataclass(frozen=True)
class SolveOptions:
    objective: Objective = Objective.MAKESPAN
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    time_limit_s: float = 10.0
    workers: int = 2
    seed: int = 0
    # Operations that must stay exactly where they are (already started or done).
    fixed: Mapping[OperationKey, Assignment] = field(default_factory=dict)
    # A previous schedule: each operation placed differently adds ``moved_weight``.
    original: Mapping[OperationKey, Assignment] = field(default_factory=dict)
    moved_weight: int = 0
    # No operation that is not fixed starts before this time ("now" when rescheduling).
    not_before: int = 0
    # Share of the time given to the full CP-SAT model before neighbourhood search.
    full_share: float = 0.5
    use_lns: bool = True


def solve(
    problem: Problem,
    options: SolveOptions,
    *,
    on_improvement: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Solution:
    """The best schedule found within ``options.time_limit_s``; never raises on hard input."""
    return _Search(problem, options, on_improvement, should_stop).run()


class _Search:
    def __init__(
        self,
        problem: Problem,
        options: SolveOptions,
        on_improvement: Progress | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.started = time.monotonic()
        limit = max(0.0, options.time_limit_s)
        reserve = min(RESERVE_S[1], max(RESERVE_S[0], RESERVE_SHARE * limit))
        self.deadline = self.started + max(limit * 0.5, limit - reserve)
        self.problem = problem
        self.options = options
        self.on_improvement = on_improvement
        self.external_stop = should_stop or (lambda: False)
        self.ix = Indexed(problem)
        # Reading a large model's solution back and shutting CP-SAT down take time too.
        self.deadline -= min(limit * 0.2, 0.0003 * len(self.ix.ops))
        self.fixed = {self.ix.op_index[key]: a for key, a in options.fixed.items()}
        self.original = {
            self.ix.op_index[key]: (self.ix.machine_index[a.machine_id], a.start)
            for key, a in options.original.items()
            if key in self.ix.op_index and a.machine_id in self.ix.machine_index
        }
        self.lock = threading.Lock()
        self.best: tuple[Assignment, ...] | None = None
        self.best_value: int | None = None
        self.best_name = ""
        self.best_ends = 0
        self.bound = self.ix.trivial_lower_bound(options.objective, options.weights)
        self.hint: tuple[Assignment, ...] | None = None
        self.proven_optimal = False
        self.trace: list[tuple[str, int, cp_model.CpSolverStatus, int | None]] = []

    # -- bookkeeping -------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def stopped(self) -> bool:
        return self.remaining() <= 0 or self.external_stop()

    def value(self, assignments: tuple[Assignment, ...]) -> int:
        options = self.options
        value = objective_value(self.problem, assignments, options.objective, options.weights)
        return value + options.moved_weight * self.moved(assignments)

    def moved(self, assignments: tuple[Assignment, ...]) -> int:
        original = self.options.original
        return sum(
            1
            for a in assignments
            if (o := original.get((a.job_id, a.operation_id))) is not None
            and (o.machine_id != a.machine_id or o.start != a.start)
            and (a.job_id, a.operation_id) not in self.options.fixed
        )

    def meets_deadlines(self, assignments: tuple[Assignment, ...]) -> bool:
        ends: dict[str, int] = {}
        for a in assignments:
            ends[a.job_id] = max(ends.get(a.job_id, 0), a.end)
        return all(
            job.deadline <= 0 or ends.get(job.id, 0) <= job.deadline for job in self.problem.jobs
        )

    def offer(
        self, assignments: tuple[Assignment, ...], name: str, *, equal_ok: bool = False
    ) -> bool:
        """Take ``assignments`` as the incumbent if they are better; report them."""
        value = self.value(assignments)
        ends = _sum_of_job_ends(assignments)
        with self.lock:
            if self.best_value is not None and (
                value > self.best_value
                or (value == self.best_value and (not equal_ok or ends > self.best_ends))
            ):
                return False
            improved = self.best_value is None or value < self.best_value
            self.best, self.best_value, self.best_name = assignments, value, name
            self.best_ends = ends
        if improved and self.on_improvement is not None:
            self.on_improvement(self.solution(SolveStatus.FEASIBLE))
        return True

    def _offer_quietly(self, assignments: tuple[Assignment, ...]) -> None:
        self.offer(assignments, SOLVER_NAME)

    def solution(self, status: SolveStatus, reason: str = "") -> Solution:
        assignments = self.best or ()
        value = self.best_value or 0
        bound = min(self.bound, value) if self.best is not None else self.bound
        if self.best is not None and value <= bound and status is SolveStatus.FEASIBLE:
            status = SolveStatus.OPTIMAL
        return Solution(
            assignments=assignments,
            status=status,
            solver=self.best_name,
            objective_value=value,
            lower_bound=bound,
            wall_time_s=time.monotonic() - self.started,
            reason=reason,
            moved_operations=self.moved(assignments) if self.best is not None else 0,
        )

    # -- phases ------------------------------------------------------------------------

    def run(self) -> Solution:
        reason = self.precheck()
        if reason:
            return self.solution(SolveStatus.INFEASIBLE, reason)
        # The first rule's schedule is reported at once; the others only when time allows.
        for rule in DISPATCH_RULES:
            if rule != DISPATCH_RULES[0] and (
                self.stopped() or self.remaining() < 0.5 * self.options.time_limit_s
            ):
                break
            _, assignments, _ = best_dispatch(
                self.ix,
                self.options.objective,
                self.options.weights,
                self.fixed,
                rules=(rule,),
                not_before=self.options.not_before,
            )
            if self.hint is None or self.value(assignments) < self.value(self.hint):
                self.hint = assignments
            if self.meets_deadlines(assignments):
                self.offer(assignments, f"dispatch:{rule}")
        if self.best_value is not None and self.best_value <= self.bound:
            return self.solution(SolveStatus.OPTIMAL)
        outcome = self.full_solve()
        if outcome is not None:
            return outcome
        if self.options.use_lns and self.best is not None:
            self.lns()
        if self.best is None:
            return self.solution(
                SolveStatus.UNKNOWN,
                "no schedule meeting every job deadline was found within the time limit",
            )
        return self.solution(SolveStatus.OPTIMAL if self.proven_optimal else SolveStatus.FEASIBLE)

    def build_cost(self) -> float:
        """A pessimistic guess of the seconds needed to build the CP-SAT model."""
        ix = self.ix
        setup_ops = sum(
            len([op for op in ix.ops if any(m == mm for mm, _ in op.eligible)]) ** 2
            for m, pairs in enumerate(ix.setup)
            if pairs
        )
        choices = sum(len(op.eligible) for op in ix.ops)
        return 0.0003 * choices + 0.00001 * min(setup_ops, cpsat.MAX_SETUP_PAIRS)

    def precheck(self) -> str:
        """A reason the problem surely has no schedule, found without search; or ''."""
        ix = self.ix
        heads, tails = cpsat._heads_and_tails(ix)
        for j, job in enumerate(self.problem.jobs):
            if job.deadline <= 0:
                continue
            earliest = max(heads[k] + tails[k] for k in ix.job_ops[j])
            if earliest > job.deadline:
                return (
                    f"job {job.id!r} cannot end by its deadline {job.deadline}: released at "
                    f"{job.release}, its operations need at least until {earliest}"
                )
        return ""

    def horizon(self) -> int:
        if (
            self.options.objective is Objective.MAKESPAN
            and self.best_value is not None
            and not self.options.moved_weight
            and len(self.ix.ops) <= LARGE_PROBLEM_OPERATIONS
        ):
            # Only schedules no longer than the incumbent are of interest.
            return max(a.end for a in self.best) if self.best else self.ix.horizon()
        return self.ix.horizon()

    def full_solve(self) -> Solution | None:
        share = (
            self.options.full_share
            if self.options.use_lns
            and self.best
            and SMALL_PROBLEM_OPERATIONS < len(self.ix.ops) <= LARGE_PROBLEM_OPERATIONS
            else 1.0
        )
        budget = self.remaining() * share
        if budget <= 0.01 or self.external_stop() or self.build_cost() > 0.5 * budget:
            # Building the model alone would eat the time: the heuristic schedule stands.
            return None
        model = cpsat.JobShopModel(
            self.ix,
            cpsat.ModelOptions(
                objective=self.options.objective,
                weights=self.options.weights,
                horizon=self.horizon(),
                fixed=self.fixed,
                original=self.original,
                moved_weight=self.options.moved_weight,
                objective_upper=self.best_value,
                objective_lower=self.bound,
                not_before=self.options.not_before,
            ),
        )
        if self.hint and len(self.ix.ops) <= LARGE_PROBLEM_OPERATIONS:
            # On large models a hint steers CP-SAT's first workers into the heuristic's
            # neighbourhood and it finds less than from scratch (measured on 50x15 and 100x20);
            # there the incumbent only bounds the objective.
            model.hint(self.hint, self.value(self.hint))
        budget = min(budget, self.remaining()) if share < 1 else self.remaining()
        if budget <= 0.01:
            return None
        result = cpsat.run(
            model,
            time_limit_s=budget,
            workers=self.options.workers,
            seed=self.options.seed,
            should_stop=self.stopped,
            on_solution=lambda _, a: self._offer_quietly(a),
        )
        if result.assignments is not None:
            self.offer(result.assignments, SOLVER_NAME)
        if result.status == cp_model.OPTIMAL:
            self.bound = max(self.bound, result.bound)
            self.proven_optimal = True
            return self.solution(SolveStatus.OPTIMAL)
        if result.status == cp_model.INFEASIBLE:
            if self.best is not None:
                # Nothing better than the incumbent exists: it is optimal.
                self.bound = self.best_value or 0
                self.proven_optimal = True
                return self.solution(SolveStatus.OPTIMAL)
            return self.solution(
                SolveStatus.INFEASIBLE,
                "no schedule meets every job deadline together with the fixed operations "
                "and machine downtime (proven by the CP-SAT solver)",
            )
        self.bound = max(self.bound, result.bound)
        return None

    # -- large-neighbourhood search ------------------------------------------------------

    def lns(self) -> None:
        """Neighbourhood search on every worker at once, one CP-SAT worker each."""
        threads = [
            threading.Thread(target=self.lns_worker, args=(w,), daemon=True)
            for w in range(max(1, self.options.workers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def lns_worker(self, worker: int) -> None:
        ix = self.ix
        n = len(ix.ops)
        rng = random.Random(self.options.seed * 1000 + worker)  # noqa: S311 (not for secrets)
        free = [k for k in range(n) if k not in self.fixed]
        if not free:
            return
        fraction = min(0.5, max(0.02, 20 / max(1, len(free))))
        slice_s = min(2.0, 0.5 + n / 2000)
        if self.build_cost() > 0.5 * slice_s:
            return  # every neighbourhood model would cost more to build than to solve
        # Whole jobs make neighbourhoods that rarely solve in a slice; they come less often.
        kinds = ["window", "machines", "window", "machines", "jobs"]
        iteration = 0
        while not self.stopped():
            if self.best_value is not None and self.best_value <= self.bound:
                self.proven_optimal = True
                return
            budget = min(slice_s, self.remaining())
            if budget < 0.1:
                return
            kind = kinds[(iteration + worker) % len(kinds)]
            iteration += 1
            incumbent = self.best
            assert incumbent is not None
            size = max(2, int(fraction * len(free)))
            relaxed = self.neighbourhood(kind, incumbent, size, free, rng)
            result = self.solve_neighbourhood(incumbent, relaxed, budget, rng.randrange(1 << 20))
            if result is None:
                return
            if result.assignments is not None:
                self.offer(result.assignments, SOLVER_NAME, equal_ok=True)
            self.trace.append((kind, len(relaxed), result.status, result.objective))
            if result.status == cp_model.OPTIMAL or result.status == cp_model.INFEASIBLE:
                fraction = min(0.9, fraction * 1.1)
            else:
                fraction = max(0.01, fraction * 0.9)

    def neighbourhood(
        self,
        kind: str,
        incumbent: tuple[Assignment, ...],
        size: int,
        free: list[int],
        rng: random.Random,
    ) -> set[int]:
        ix = self.ix
        index = ix.op_index
        relaxed: set[int] = set()
        if kind == "machines":
            by_machine: dict[str, list[int]] = {}
            for a in incumbent:
                k = index[(a.job_id, a.operation_id)]
                if k not in self.fixed:
                    by_machine.setdefault(a.machine_id, []).append(k)
            machines = list(by_machine)
            rng.shuffle(machines)
            for m in machines:
                if len(relaxed) >= size:
                    break
                relaxed.update(by_machine[m])
        elif kind == "jobs":
            jobs = list(range(len(ix.job_ops)))
            rng.shuffle(jobs)
            for j in jobs:
                if len(relaxed) >= size:
                    break
                relaxed.update(k for k in ix.job_ops[j] if k not in self.fixed)
        else:
            ordered = [index[(a.job_id, a.operation_id)] for a in incumbent]
            ordered = [k for k in ordered if k not in self.fixed]
            first = rng.randrange(max(1, len(ordered) - size + 1))
            relaxed.update(ordered[first : first + size])
        return relaxed

    def solve_neighbourhood(
        self, incumbent: tuple[Assignment, ...], relaxed: set[int], budget: float, seed: int
    ) -> cpsat.RunResult | None:
        ix = self.ix
        machine_of: dict[int, int] = {}
        sequences: dict[int, list[tuple[int, int, int]]] = {}
        for a in incumbent:
            k = ix.op_index[(a.job_id, a.operation_id)]
            m = ix.machine_index[a.machine_id]
            if k not in relaxed and k not in self.fixed:
                machine_of[k] = m
            if k not in relaxed and a.end > a.start:
                sequences.setdefault(m, []).append((a.start, a.end, k))
        touched = {
            ix.machine_index[a.machine_id]
            for a in incumbent
            if ix.op_index[(a.job_id, a.operation_id)] in relaxed
        }
        sequenced = frozenset(
            m
            for m in range(len(ix.machine_ids))
            if m not in touched and not ix.downtime[m] and not ix.setup[m]
        )
        arcs: list[tuple[int, int]] = []
        for entries in sequences.values():
            entries.sort()
            arcs.extend((a[2], b[2]) for a, b in itertools.pairwise(entries))
        model = cpsat.JobShopModel(
            ix,
            cpsat.ModelOptions(
                objective=self.options.objective,
                weights=self.options.weights,
                horizon=self.horizon(),
                fixed=self.fixed,
                machine_of=machine_of,
                sequence=arcs,
                original=self.original,
                moved_weight=self.options.moved_weight,
                objective_upper=self.best_value,
                objective_lower=self.bound,
                sequenced_machines=sequenced,
                tie_break_ends=True,
                not_before=self.options.not_before,
            ),
        )
        model.hint(incumbent, self.value(incumbent))
        budget = min(budget, self.remaining())
        if budget < 0.02 or self.external_stop():
            return None
        return cpsat.run(
            model,
            time_limit_s=budget,
            workers=1,
            seed=seed,
            should_stop=self.stopped,
            parameters=LNS_PARAMETERS,
        )


def _sum_of_job_ends(assignments: tuple[Assignment, ...]) -> int:
    ends: dict[str, int] = {}
    for a in assignments:
        ends[a.job_id] = max(ends.get(a.job_id, 0), a.end)
    return sum(ends.values())
