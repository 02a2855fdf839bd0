"""The tabu search on its own, and as the solver's improvement phase."""

from __future__ import annotations

import json
import time

import pytest

from services.scheduling.domain import tabu
from services.scheduling.domain.dispatch import best_dispatch
from services.scheduling.domain.indexed import Indexed
from services.scheduling.domain.model import (
    Assignment,
    EligibleMachine,
    Interval,
    Job,
    Machine,
    Objective,
    ObjectiveWeights,
    Operation,
    OperationRef,
    Precedence,
    Problem,
    SetupTime,
)
from services.scheduling.domain.orlib import parse_orlib
from services.scheduling.domain.solver import TABU_NAME, SolveOptions, solve
from tests.scheduling.checker import assert_feasible
from tests.shared_data import shared_data


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    tabu.warm_up()


def dispatched(problem: Problem) -> tuple[Indexed, tuple[Assignment, ...]]:
    ix = Indexed(problem)
    _, assignments, _ = best_dispatch(
        ix, Objective.MAKESPAN, ObjectiveWeights(), {}, rules=("ect-mwkr",)
    )
    return ix, assignments


def walk(
    ix: Indexed, start: tuple[Assignment, ...], seconds: float, lower_bound: int = 0
) -> list[tuple[Assignment, ...]]:
    found: list[tuple[Assignment, ...]] = []
    tabu.improve(
        ix,
        start,
        deadline=time.monotonic() + seconds,
        seed=7,
        lower_bound=lambda: lower_bound,
        on_improvement=found.append,
        should_stop=lambda: False,
    )
    return found


def makespan(assignments: tuple[Assignment, ...]) -> int:
    return max(a.end for a in assignments)


def test_walk_reaches_ft06_optimum_through_feasible_improving_schedules():
    problem = parse_orlib((shared_data("jssp") / "ft06").read_text())
    ix, start = dispatched(problem)
    found = walk(ix, start, seconds=5, lower_bound=55)
    spans = [makespan(a) for a in found]
    assert spans and spans[-1] == 55
    assert spans == sorted(spans, reverse=True) and spans[0] < makespan(start)
    for assignments in found:
        assert_feasible(problem, assignments)


def test_walk_stops_at_the_lower_bound_long_before_its_deadline():
    problem = parse_orlib((shared_data("jssp") / "ft06").read_text())
    ix, start = dispatched(problem)
    started = time.monotonic()
    walk(ix, start, seconds=30, lower_bound=55)
    assert time.monotonic() - started < 5


def test_release_times_extra_precedences_and_zero_lengths_are_kept():
    def job(name: str, release: int, *steps: tuple[str, int]) -> Job:
        return Job(
            name,
            tuple(Operation(str(k), (EligibleMachine(m, d),)) for k, (m, d) in enumerate(steps)),
            release=release,
        )

    problem = Problem(
        machines=(Machine("a"), Machine("b"), Machine("c")),
        jobs=(
            job("j1", 0, ("a", 5), ("b", 0), ("c", 4)),
            job("j2", 3, ("b", 6), ("a", 2), ("c", 3)),
            job("j3", 1, ("c", 2), ("b", 0), ("a", 6)),
            job("j4", 0, ("a", 3), ("c", 5), ("b", 2)),
        ),
        precedences=(Precedence(OperationRef("j4", "2"), OperationRef("j3", "2")),),
    )
    ix, start = dispatched(problem)
    for assignments in walk(ix, start, seconds=1):
        assert_feasible(problem, assignments)


def test_every_schedule_of_a_walk_on_orb07_with_its_zero_length_operation_is_feasible():
    problem = parse_orlib((shared_data("jssp") / "orb07").read_text())
    ix, start = dispatched(problem)
    found = walk(ix, start, seconds=1.5)
    assert found
    for assignments in found:
        assert_feasible(problem, assignments)


def test_only_problems_the_walk_models_exactly_are_given_to_it():
    plain = Problem(
        machines=(Machine("a"), Machine("b")),
        jobs=(Job("j", (Operation("0", (EligibleMachine("a", 2),)),)),),
    )
    assert tabu.applies(Indexed(plain))
    flexible = Problem(
        machines=plain.machines,
        jobs=(Job("j", (Operation("0", (EligibleMachine("a", 2), EligibleMachine("b", 3))),)),),
    )
    down = Problem(
        machines=(Machine("a", unavailable=(Interval(0, 5),)), Machine("b")), jobs=plain.jobs
    )
    setups = Problem(
        machines=plain.machines,
        jobs=(*plain.jobs, Job("k", (Operation("0", (EligibleMachine("a", 1),)),))),
        setups=(SetupTime("a", "j", "k", 4),),
    )
    for problem in (flexible, down, setups):
        assert not tabu.applies(Indexed(problem))


def test_solver_improves_a_hard_instance_with_the_walk_within_the_limit():
    folder = shared_data("jssp")
    problem = parse_orlib((folder / "abz7").read_text())
    best_known = json.loads((folder / "bounds.json").read_text())["abz7"]["upper"]
    started = time.monotonic()
    reports: list[tuple[str, int]] = []
    solution = solve(
        problem,
        SolveOptions(time_limit_s=3),
        on_improvement=lambda s: reports.append((s.solver, s.objective_value)),
    )
    assert time.monotonic() - started <= 3.5
    assert_feasible(problem, solution.assignments)
    # Only schedules better than every earlier one are reported: the walks improved on
    # what dispatch and CP-SAT's proof phase had found before them.
    assert TABU_NAME in [solver for solver, _ in reports]
    assert solution.lower_bound <= best_known <= solution.objective_value
