"""Our scheduling solver vs the plain CP-SAT model, side by side on the same instances.

Run with ``.venv/bin/python -m bench.scheduling`` (58 instances x 2 solvers x 10 s, about
20 minutes on 2 cores); ``--instances ft10,la21`` or ``--time-limit 2`` for a quick look.

The plain model is the textbook one: one interval per operation, NoOverlap per machine,
job precedences, minimise the makespan, horizon = sum of all durations. Both solvers get
the same time limit and the same number of CP-SAT workers, one after the other. Every
schedule is checked by a feasibility checker written here independently of the service;
ours is also checked against the time limit plus max(0.5 s, 5%).

Per instance the table shows each makespan and its gap to the best-known makespan in
``bounds.json`` (``upper``), our wall time, and when our first schedule was reported
(what SolveStream streams first). Seeded instances from Taillard's generator (50x15, 100x20),
which have no known bounds, are compared on makespan against the plain model and on the
gap to a simple lower bound. The last line is
``scheduling: ours_mean_gap=X% plain_cpsat_mean_gap=Y% ratio=X/Y feasible=N/N
first_schedule_max_s=F`` (mean gaps over the instances with bounds; ``feasible`` counts
our schedules, generated ones included, that pass the checker and the time limit; ``F``
is the latest first report over all instances).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from ortools.sat.python import cp_model

from services.scheduling.domain import tabu
from services.scheduling.domain.model import (
    Assignment,
    EligibleMachine,
    Job,
    Machine,
    Objective,
    Operation,
    Problem,
    Solution,
)
from services.scheduling.domain.orlib import parse_orlib
from services.scheduling.domain.solver import SolveOptions, solve

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jssp"
# (jobs, machines, time seed, machine seed) for the generated instances.
GENERATED = {
    "50x15": (50, 15, 1_958_948_863, 1_410_832_874),
    "100x20": (100, 20, 1_311_869_101, 1_140_216_207),
}


def plain_cpsat(
    problem: Problem, time_limit_s: float, workers: int
) -> tuple[Assignment, ...] | None:
    """The textbook CP-SAT job-shop model; None when it finds nothing in time."""
    model = cp_model.CpModel()
    horizon = sum(op.eligible_machines[0].duration for job in problem.jobs for op in job.operations)
    per_machine: dict[str, list[cp_model.IntervalVar]] = defaultdict(list)
    entries = []
    ends: list[cp_model.IntVar] = []
    for job in problem.jobs:
        previous: cp_model.IntVar | None = None
        for op in job.operations:
            eligible = op.eligible_machines[0]
            start = model.new_int_var(0, horizon, "")
            end = model.new_int_var(0, horizon, "")
            per_machine[eligible.machine_id].append(
                model.new_interval_var(start, eligible.duration, end, "")
            )
            if previous is not None:
                model.add(start >= previous)
            previous = end
            entries.append((job.id, op.id, eligible.machine_id, start, end))
        if previous is not None:
            ends.append(previous)
    for intervals in per_machine.values():
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, ends)
    model.minimize(makespan)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return tuple(Assignment(j, o, m, solver.value(s), solver.value(e)) for j, o, m, s, e in entries)


def check(problem: Problem, assignments: tuple[Assignment, ...] | None) -> str:
    """'' when the schedule is feasible, else what is wrong (independent of the service)."""
    if not assignments:
        return "no schedule"
    durations = {
        (job.id, op.id): {e.machine_id: e.duration for e in op.eligible_machines}
        for job in problem.jobs
        for op in job.operations
    }
    placed = {(a.job_id, a.operation_id): a for a in assignments}
    if len(placed) != len(assignments) or placed.keys() != durations.keys():
        return "operations missing or repeated"
    for key, a in placed.items():
        if a.machine_id not in durations[key] or a.end - a.start != durations[key][a.machine_id]:
            return f"{key}: wrong machine or duration"
        if a.start < 0:
            return f"{key}: starts before 0"
    for job in problem.jobs:
        chain = [placed[(job.id, op.id)] for op in job.operations]
        if any(a.end > b.start for a, b in itertools.pairwise(chain)):
            return f"job {job.id}: order violated"
    by_machine = defaultdict(list)
    for a in assignments:
        if a.end > a.start:
            by_machine[a.machine_id].append(a)
    for machine, items in by_machine.items():
        items.sort(key=lambda a: a.start)
        if any(a.end > b.start for a, b in itertools.pairwise(items)):
            return f"machine {machine}: overlap"
    return ""


def taillard(jobs: int, machines: int, time_seed: int, machine_seed: int) -> Problem:
    """An instance from Taillard's (1993) generator: durations 1..99, random routes."""

    def uniform(state: list[int], low: int, high: int) -> int:
        # Lehmer generator with Schrage's method, as in Taillard's paper.
        a, b, c, m = 16807, 127773, 2836, 2**31 - 1
        k = state[0] // b
        state[0] = a * (state[0] % b) - k * c
        if state[0] < 0:
            state[0] += m
        return low + int(state[0] / m * (high - low + 1))

    time_state, machine_state = [time_seed], [machine_seed]
    durations = [[uniform(time_state, 1, 99) for _ in range(machines)] for _ in range(jobs)]
    routes = []
    for _ in range(jobs):
        route = list(range(machines))
        for position in range(machines):
            other = uniform(machine_state, position, machines - 1)
            route[position], route[other] = route[other], route[position]
        routes.append(route)
    return Problem(
        machines=tuple(Machine(f"m{m}") for m in range(machines)),
        jobs=tuple(
            Job(
                f"j{j}",
                tuple(
                    Operation(str(p), (EligibleMachine(f"m{route[p]}", durations[j][p]),))
                    for p in range(machines)
                ),
            )
            for j, route in enumerate(routes)
        ),
    )


def simple_lower_bound(problem: Problem) -> int:
    load: dict[str, int] = defaultdict(int)
    longest = 0
    for job in problem.jobs:
        longest = max(longest, sum(op.eligible_machines[0].duration for op in job.operations))
        for op in job.operations:
            load[op.eligible_machines[0].machine_id] += op.eligible_machines[0].duration
    return max(longest, max(load.values()))


def makespan(assignments: tuple[Assignment, ...] | None) -> int | None:
    return max(a.end for a in assignments) if assignments else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="instances + bounds.json")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solver run")
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT workers for both solvers")
    parser.add_argument("--instances", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--generated", default="50x15,100x20", help="Taillard-generator sizes to add, or 'none'"
    )
    args = parser.parse_args(argv)
    # The service compiles its tabu-search kernel at start; so does the benchmark, before
    # any clock runs.
    tabu.warm_up()
    bounds = json.loads((args.data / "bounds.json").read_text())
    names = sorted(bounds) if not args.instances else args.instances.split(",")
    limit = args.time_limit
    allowed = limit + max(0.5, 0.05 * limit)
    ours_gaps, plain_gaps = [], []
    feasible = runs = 0
    print(f"time limit {limit} s, {args.workers} workers, data {args.data}")
    header = ("instance", "size", "best", "ours", "gap%", "plain", "gap%", "ours s", "first s")
    slowest_first = 0.0
    print(f"{header[0]:<10}" + "".join(f"{h:>8}" for h in header[1:]))
    cases: list[tuple[str, Problem, int | None]] = []
    for name in names:
        cases.append((name, parse_orlib((args.data / name).read_text()), bounds[name]["upper"]))
    if args.generated != "none":
        for size in args.generated.split(","):
            cases.append((f"tai{size}", taillard(*GENERATED[size]), None))
    for name, problem, best in cases:
        started = time.monotonic()
        reports = _Reports(started)
        ours = solve(
            problem,
            SolveOptions(Objective.MAKESPAN, time_limit_s=limit, workers=args.workers),
            on_improvement=reports,
        )
        wall = time.monotonic() - started
        first = reports.times[0] if reports.times else float("nan")
        slowest_first = max(slowest_first, first)
        plain = plain_cpsat(problem, limit, args.workers)
        runs += 1
        problem_ours = check(problem, ours.assignments)
        ok = not problem_ours and wall <= allowed
        feasible += ok
        ours_ms, plain_ms = makespan(ours.assignments), makespan(plain)
        if check(problem, plain) and plain is not None:
            plain_ms = None  # an infeasible plain schedule counts as none
        reference = best if best is not None else simple_lower_bound(problem)

        def gap(value: int | None, reference: int = reference) -> float | None:
            return None if value is None else 100.0 * (value - reference) / reference

        ours_gap, plain_gap = gap(ours_ms), gap(plain_ms)
        if best is not None:
            ours_gaps.append(ours_gap if ours_gap is not None else 100.0)
            # No schedule at all counts as a 100% gap.
            plain_gaps.append(plain_gap if plain_gap is not None else 100.0)
        size = f"{len(problem.jobs)}x{len(problem.machines)}"
        print(
            f"{name:<10}{size:>8}{reference if best else 'lb' + str(reference):>8}"
            f"{_fmt(ours_ms):>8}{_fmt(ours_gap, '.2f'):>8}{_fmt(plain_ms):>8}"
            f"{_fmt(plain_gap, '.2f'):>8}{wall:>8.2f}{first:>8.3f}"
            + ("" if ok else f"  NOT OK: {problem_ours or 'over the time limit'}"),
            flush=True,
        )
    ours_mean = statistics.fmean(ours_gaps) if ours_gaps else 0.0
    plain_mean = statistics.fmean(plain_gaps) if plain_gaps else 0.0
    ratio = ours_mean / plain_mean if plain_mean else float("nan")
    print(
        f"scheduling: ours_mean_gap={ours_mean:.3f}% plain_cpsat_mean_gap={plain_mean:.3f}% "
        f"ratio={ratio:.3f} feasible={feasible}/{runs} first_schedule_max_s={slowest_first:.3f}"
    )
    return 0 if feasible == runs else 1


class _Reports:
    """Seconds from ``started`` at which each improving schedule was reported."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.times: list[float] = []

    def __call__(self, _: Solution) -> None:
        self.times.append(time.monotonic() - self.started)


def _fmt(value: float | None, spec: str = "d") -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    sys.exit(main())
