"""The dispatching heuristic: always a feasible schedule, on real benchmark instances."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import pytest

from services.scheduling.domain.dispatch import dispatch
from services.scheduling.domain.model import (
    EligibleMachine,
    Job,
    Machine,
    Operation,
    Problem,
    Solution,
)
from services.scheduling.domain.orlib import FormatError, parse_orlib
from tests.shared_data import shared_data


def assert_feasible(problem: Problem, solution: Solution) -> None:
    durations = {
        (job.id, op.id): {e.machine_id: e.duration for e in op.eligible_machines}
        for job in problem.jobs
        for op in job.operations
    }
    placed = {(a.job_id, a.operation_id): a for a in solution.assignments}
    assert placed.keys() == durations.keys(), "every operation exactly once"
    for key, assignment in placed.items():
        assert assignment.machine_id in durations[key]
        assert assignment.end - assignment.start == durations[key][assignment.machine_id]
        assert assignment.start >= 0
    for job in problem.jobs:
        chain = [placed[(job.id, op.id)] for op in job.operations]
        assert all(a.end <= b.start for a, b in itertools.pairwise(chain))
    by_machine = defaultdict(list)
    for assignment in solution.assignments:
        by_machine[assignment.machine_id].append(assignment)
    for assignments in by_machine.values():
        assignments.sort(key=lambda a: a.start)
        assert all(a.end <= b.start for a, b in itertools.pairwise(assignments))


@pytest.mark.parametrize("name", ["ft06", "la01", "abz5", "orb07"])
def test_benchmarks_are_feasible_and_within_sane_bounds(name):
    folder = shared_data("jssp")
    problem = parse_orlib((folder / name).read_text())
    bounds = json.loads((folder / "bounds.json").read_text())[name]
    solution = dispatch(problem)
    assert_feasible(problem, solution)
    assert bounds["lower"] <= solution.makespan <= 2 * bounds["upper"]


def test_flexible_operation_goes_to_the_machine_that_finishes_first():
    problem = Problem(
        machines=(Machine("slow"), Machine("fast")),
        jobs=(
            Job("a", (Operation("0", (EligibleMachine("slow", 10), EligibleMachine("fast", 3))),)),
            Job("b", (Operation("0", (EligibleMachine("slow", 4), EligibleMachine("fast", 3))),)),
        ),
    )
    solution = dispatch(problem)
    assert_feasible(problem, solution)
    assert solution.makespan == 4
    assert {a.job_id: a.machine_id for a in solution.assignments} == {"a": "fast", "b": "slow"}


def test_zero_length_operations_are_scheduled():
    problem = Problem(
        machines=(Machine("m"),),
        jobs=(Job("a", (Operation("0", (EligibleMachine("m", 0),)),)),),
    )
    solution = dispatch(problem)
    assert_feasible(problem, solution)
    assert solution.makespan == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header"),
        ("2 x", "line 1"),
        ("1 2\n0 3 1", "pairs"),
        ("1 2\n0 3 5 1", "out of range"),
        ("2 2\n0 3 1 1", "expected 2 job lines"),
        ("1 1\n0 -3", "negative"),
    ],
)
def test_malformed_instances_say_where(text, message):
    with pytest.raises(FormatError, match=message):
        parse_orlib(text)
