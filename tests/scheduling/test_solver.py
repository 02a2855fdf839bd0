"""The solver: warm start, CP-SAT, neighbourhood search, every extension of the model."""

from __future__ import annotations

import json
import time

import pytest
from ortools.sat.python import cp_model

from services.scheduling.domain import cpsat
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
    SolveStatus,
)
from services.scheduling.domain.orlib import parse_orlib
from services.scheduling.domain.solver import SolveOptions, solve
from tests.scheduling.checker import assert_feasible, violations
from tests.shared_data import shared_data


def op(name: str, *choices: tuple[str, int]) -> Operation:
    return Operation(name, tuple(EligibleMachine(m, d) for m, d in choices))


def two_by_two(**job_fields: object) -> Problem:
    return Problem(
        machines=(Machine("a"), Machine("b")),
        jobs=(
            Job("j1", (op("0", ("a", 3)), op("1", ("b", 2)))),
            Job("j2", (op("0", ("b", 4)), op("1", ("a", 3)))),
        ),
    )


def test_small_problem_is_solved_to_proven_optimality():
    solution = solve(two_by_two(), SolveOptions(time_limit_s=5))
    assert_feasible(two_by_two(), solution.assignments)
    assert solution.status is SolveStatus.OPTIMAL
    assert solution.objective_value == solution.lower_bound == solution.makespan == 7
    assert solution.gap == 0.0


def test_ft06_reaches_its_optimum_and_improvements_are_reported_in_order():
    problem = parse_orlib((shared_data("jssp") / "ft06").read_text())
    seen: list[int] = []
    solution = solve(
        problem,
        SolveOptions(time_limit_s=5),
        on_improvement=lambda s: seen.append(s.objective_value),
    )
    assert_feasible(problem, solution.assignments)
    assert solution.objective_value == 55
    assert solution.status is SolveStatus.OPTIMAL
    assert seen and seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)
    assert seen[0] >= 55


@pytest.mark.parametrize("limit", [0.5, 1.5])
def test_time_limit_is_kept_and_the_schedule_beats_the_heuristic(limit):
    folder = shared_data("jssp")
    problem = parse_orlib((folder / "abz7").read_text())
    started = time.monotonic()
    first: list[int] = []
    solution = solve(
        problem,
        SolveOptions(time_limit_s=limit),
        on_improvement=lambda s: first.append(s.objective_value),
    )
    wall = time.monotonic() - started
    assert wall <= limit + max(0.5, 0.05 * limit)
    assert_feasible(problem, solution.assignments)
    assert solution.status is SolveStatus.FEASIBLE
    best_known = json.loads((folder / "bounds.json").read_text())["abz7"]["upper"]
    assert solution.lower_bound <= best_known <= solution.objective_value <= first[0]
    assert 0 < solution.gap < 1
    assert solution.wall_time_s <= wall


def test_stop_request_ends_the_search_promptly():
    problem = parse_orlib((shared_data("jssp") / "la40").read_text())
    started = time.monotonic()
    solution = solve(
        problem,
        SolveOptions(time_limit_s=30),
        should_stop=lambda: time.monotonic() - started > 0.5,
    )
    assert time.monotonic() - started < 1.5
    assert_feasible(problem, solution.assignments)


def test_flexible_shop_uses_the_second_machine():
    problem = Problem(
        machines=(Machine("slow"), Machine("fast")),
        jobs=tuple(
            Job(f"j{i}", (op("0", ("slow", 6), ("fast", 3)), op("1", ("slow", 2), ("fast", 2))))
            for i in range(4)
        ),
    )
    solution = solve(problem, SolveOptions(time_limit_s=3))
    assert_feasible(problem, solution.assignments)
    assert {a.machine_id for a in solution.assignments} == {"slow", "fast"}
    assert solution.status is SolveStatus.OPTIMAL


def test_downtime_release_setups_and_precedences_are_respected():
    problem = Problem(
        machines=(Machine("a", unavailable=(Interval(2, 6),)), Machine("b")),
        jobs=(
            Job("j1", (op("0", ("a", 3)), op("1", ("b", 2)))),
            Job("j2", (op("0", ("b", 4)), op("1", ("a", 3))), release=1),
            Job("j3", (op("0", ("a", 1)), op("1", ("b", 1))), release=5),
        ),
        precedences=(Precedence(OperationRef("j3", "1"), OperationRef("j1", "1")),),
        setups=(
            SetupTime("a", "j1", "j2", 2),
            SetupTime("a", "j2", "j1", 2),
            SetupTime("b", "j2", "j3", 3),
        ),
    )
    solution = solve(problem, SolveOptions(time_limit_s=3))
    assert_feasible(problem, solution.assignments)
    assert solution.status is SolveStatus.OPTIMAL


def test_tardiness_objective_puts_the_urgent_job_first():
    problem = Problem(
        machines=(Machine("m"),),
        jobs=(
            Job("long", (op("0", ("m", 10)),), due=30, weight=1),
            Job("rush", (op("0", ("m", 2)),), due=2, weight=5),
        ),
    )
    solution = solve(problem, SolveOptions(Objective.TOTAL_WEIGHTED_TARDINESS, time_limit_s=3))
    assert_feasible(problem, solution.assignments)
    assert solution.objective_value == 0
    placed = {a.job_id: a for a in solution.assignments}
    assert placed["rush"].start == 0
    weighted = solve(
        problem,
        SolveOptions(Objective.WEIGHTED_SUM, ObjectiveWeights(makespan=2, tardiness=3), 3.0),
    )
    assert weighted.objective_value == 2 * 12 + 0


def test_impossible_deadline_is_infeasible_with_a_reason():
    problem = Problem(
        machines=(Machine("m"),),
        jobs=(Job("j", (op("0", ("m", 5)), op("1", ("m", 5))), release=3, deadline=10),),
    )
    solution = solve(problem, SolveOptions(time_limit_s=2))
    assert solution.status is SolveStatus.INFEASIBLE
    assert "'j'" in solution.reason and "deadline 10" in solution.reason
    assert not solution.assignments


def test_deadlines_only_jointly_infeasible_are_proven_by_the_solver():
    problem = Problem(
        machines=(Machine("m"),),
        jobs=(
            Job("a", (op("0", ("m", 5)),), deadline=6),
            Job("b", (op("0", ("m", 5)),), deadline=6),
        ),
    )
    solution = solve(problem, SolveOptions(time_limit_s=2))
    assert solution.status is SolveStatus.INFEASIBLE
    assert "deadline" in solution.reason


def test_deadline_the_heuristic_misses_is_met_by_the_solver():
    problem = Problem(
        machines=(Machine("m"),),
        jobs=(
            Job("a", (op("0", ("m", 1)),)),
            Job("b", (op("0", ("m", 5)),), deadline=5),
        ),
    )
    solution = solve(problem, SolveOptions(time_limit_s=2))
    assert_feasible(problem, solution.assignments)
    assert solution.status is SolveStatus.OPTIMAL


def test_fixed_operations_stay_and_moves_are_counted():
    problem = two_by_two()
    fixed = {("j2", "0"): Assignment("j2", "0", "b", 0, 4)}
    original = {
        ("j1", "0"): Assignment("j1", "0", "a", 0, 3),
        ("j1", "1"): Assignment("j1", "1", "b", 4, 6),
        ("j2", "1"): Assignment("j2", "1", "a", 4, 7),
    }
    solution = solve(
        problem,
        SolveOptions(time_limit_s=2, fixed=fixed, original=original, moved_weight=1),
    )
    assert_feasible(problem, solution.assignments)
    assert fixed[("j2", "0")] in solution.assignments
    assert solution.moved_operations == 0
    assert solution.objective_value == 7


def test_fixed_operations_overlapping_on_a_machine_are_infeasible_with_a_reason():
    fixed = {
        ("j1", "0"): Assignment("j1", "0", "a", 0, 3),
        ("j2", "1"): Assignment("j2", "1", "a", 2, 5),
    }
    solution = solve(two_by_two(), SolveOptions(time_limit_s=2, fixed=fixed))
    assert solution.status is SolveStatus.INFEASIBLE
    assert "j1/0 and j2/1" in solution.reason and "'a'" in solution.reason
    assert not solution.assignments


def test_checker_catches_an_overlap():
    problem = two_by_two()
    bad = [
        Assignment("j1", "0", "a", 0, 3),
        Assignment("j1", "1", "b", 3, 5),
        Assignment("j2", "0", "b", 0, 4),
        Assignment("j2", "1", "a", 4, 7),
    ]
    assert any("overlap" in v for v in violations(problem, bad))


def test_importer_keeps_the_zero_length_operation_of_orb07_and_the_solver_places_it():
    problem = parse_orlib((shared_data("jssp") / "orb07").read_text())
    zero = [
        (job.id, op.id)
        for job in problem.jobs
        for op in job.operations
        if op.eligible_machines[0].duration == 0
    ]
    assert len(zero) == 1
    solution = solve(problem, SolveOptions(time_limit_s=2))
    assert_feasible(problem, solution.assignments)
    placed = {(a.job_id, a.operation_id): a for a in solution.assignments}
    assert placed[zero[0]].start == placed[zero[0]].end


def test_overlapping_downtime_windows_are_one_longer_window_to_cp_sat():
    problem = Problem(
        machines=(Machine("a", unavailable=(Interval(2, 10), Interval(5, 15))), Machine("b")),
        jobs=(
            Job("j1", (op("0", ("b", 4)), op("1", ("a", 3)))),
            Job("j2", (op("0", ("a", 2)), op("1", ("b", 2)))),
        ),
    )
    ix = Indexed(problem)
    assert ix.downtime[0] == [(2, 15)]
    model = cpsat.JobShopModel(
        ix,
        cpsat.ModelOptions(
            objective=Objective.MAKESPAN, weights=ObjectiveWeights(), horizon=100, fixed={}
        ),
    )
    result = cpsat.run(model, time_limit_s=5, workers=1)
    assert result.status == cp_model.OPTIMAL and result.assignments is not None
    assert_feasible(problem, result.assignments)
    assert result.objective == 18  # j2 before the windows, j1's second operation after them
