"""The scheduling solver: dispatch first, CP-SAT's full search next, then local search.

1. Dispatching rules give a feasible schedule at once (reported before anything else).
2. CP-SAT's full portfolio searches the model for part of the time, warm-started from
   that schedule with the horizon cut to its makespan: small problems are proven optimal
   here, and its bound is the lower bound reported.
3. When that does not prove optimality:
   - on the problems the tabu search models exactly (a classic job shop with releases and
     precedences, minimising the makespan; see ``tabu``), one tabu walk per worker runs
     from the incumbent for the rest of the time;
   - on every other problem CP-SAT runs only its large-neighbourhood-search workers on
     the same model, starting from the incumbent.
   Both find shorter schedules in the time than the full portfolio, whose workers spend
   much of their time on bounds (measured by bench/scheduling.py).

The whole call, model building included, keeps to the time limit: every phase gets only
what is left of it, and nothing starts when too little is left.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from services.scheduling.domain import cpsat, tabu
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
TABU_NAME = "tabu"
# Time kept back at the end of a call (a share of the limit, within these bounds), so
# threads that a busy machine schedules late still finish inside the promised limit.
RESERVE_S = (0.05, 0.3)
RESERVE_SHARE = 0.03

# Share of the time after the heuristic given to CP-SAT's full portfolio, to prove small
# problems optimal; the rest goes to its neighbourhood search alone.
PROOF_SHARE = 0.2
# Past this many operations a hint steers the full portfolio into the heuristic's
# neighbourhood where it finds less than from scratch (measured on 50x15 and 100x20):
# there the full search starts unhinted, for a larger share, and the neighbourhoods
# start from the best it found.
LARGE_PROBLEM_OPERATIONS = 500
LARGE_FULL_SHARE = 0.5
# Share of the time after the proof phase given to the tabu walks, where they apply; the
# rest goes to CP-SAT's neighbourhood search from their best schedule.
TABU_SHARE = 0.75
# CP-SAT with only its neighbourhood-search workers (no proof).
LNS_ONLY = {"use_lns_only": True}

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
        self.bound = self.ix.trivial_lower_bound(options.objective, options.weights)
        self.hint: tuple[Assignment, ...] | None = None
        self.proven_optimal = False

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

    def offer(self, assignments: tuple[Assignment, ...], name: str) -> bool:
        """Take ``assignments`` as the incumbent if they are better; report them."""
        value = self.value(assignments)
        with self.lock:
            if self.best_value is not None and value >= self.best_value:
                return False
            self.best, self.best_value, self.best_name = assignments, value, name
        if self.on_improvement is not None:
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
        outcome = self.search()
        if outcome is not None:
            return outcome
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
        return _overlapping_fixed(self.options.fixed)

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

    def search(self) -> Solution | None:
        """CP-SAT: the full portfolio first (proofs), then its neighbourhood search alone."""
        budget = self.remaining()
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
        large = len(self.ix.ops) > LARGE_PROBLEM_OPERATIONS
        if self.hint and not large:
            model.hint(self.hint, self.value(self.hint))
        if self.best is None:
            # Only the full search can find a first schedule meeting every deadline.
            return self.run_cpsat(model, self.remaining())
        if self.tabu_applies():
            outcome = self.run_cpsat(model, self.remaining() * PROOF_SHARE)
            if outcome is not None or self.stopped():
                return outcome
            self.run_tabu(time.monotonic() + self.remaining() * TABU_SHARE)
            if self.stopped() or self.best is None:
                return None
            model.hint(self.best, self.best_value)
            return self.run_cpsat(model, self.remaining(), LNS_ONLY)
        share = LARGE_FULL_SHARE if large else PROOF_SHARE
        outcome = self.run_cpsat(model, self.remaining() * share)
        if outcome is not None or self.stopped():
            return outcome
        model.hint(self.best, self.best_value)
        return self.run_cpsat(model, self.remaining(), LNS_ONLY)

    def tabu_applies(self) -> bool:
        options = self.options
        return (
            options.objective is Objective.MAKESPAN
            and not options.moved_weight
            and not options.fixed
            and not any(self.ix.deadline)
            and tabu.ready()
            and tabu.applies(self.ix)
        )

    def incumbent(self) -> tuple[int, tuple[Assignment, ...]] | None:
        with self.lock:
            if self.best is None or self.best_value is None:
                return None
            return self.best_value, self.best

    def run_tabu(self, until: float) -> None:
        """One tabu walk per worker from the incumbent, each with its own seed, until
        ``until`` (time.monotonic) or the lower bound."""
        start = self.best
        if start is None:
            return
        walks = [
            threading.Thread(
                target=tabu.improve,
                args=(self.ix, start),
                kwargs={
                    "deadline": min(until, self.deadline),
                    "seed": self.options.seed * 101 + worker,
                    "not_before": self.options.not_before,
                    "lower_bound": lambda: self.bound,
                    "on_improvement": lambda a: self.offer(a, TABU_NAME),
                    "should_stop": self.stopped,
                    "incumbent": self.incumbent,
                },
                name=f"tabu-{worker}",
            )
            for worker in range(max(1, self.options.workers))
        ]
        for walk in walks:
            walk.start()
        for walk in walks:
            walk.join()

    def run_cpsat(
        self,
        model: cpsat.JobShopModel,
        budget: float,
        parameters: Mapping[str, object] | None = None,
    ) -> Solution | None:
        """One CP-SAT run: the final solution when it settles the problem, else None."""
        budget = min(budget, self.remaining())
        if budget <= 0.01:
            return None
        result = cpsat.run(
            model,
            time_limit_s=budget,
            workers=self.options.workers,
            seed=self.options.seed,
            should_stop=self.stopped,
            on_solution=lambda _, a: self._offer_quietly(a),
            parameters=parameters,
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


def _overlapping_fixed(fixed: Mapping[OperationKey, Assignment]) -> str:
    """A reason when two operations that must stay put overlap on one machine; or ''."""
    by_machine: dict[str, list[Assignment]] = {}
    for a in fixed.values():
        if a.end > a.start:
            by_machine.setdefault(a.machine_id, []).append(a)
    for machine, placed in by_machine.items():
        placed.sort(key=lambda a: a.start)
        for a, b in itertools.pairwise(placed):
            if b.start < a.end:
                return (
                    f"operations {a.job_id}/{a.operation_id} and {b.job_id}/{b.operation_id} "
                    f"must both stay where they are but overlap on machine {machine!r}"
                )
    return ""
