"""The job-shop problem and its schedules, as plain values.

Times are integer time units from the start of the planning horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Objective(StrEnum):
    MAKESPAN = "makespan"


class SolveStatus(StrEnum):
    FEASIBLE = "feasible"
    OPTIMAL = "optimal"


@dataclass(frozen=True)
class Machine:
    id: str
    display_name: str = ""


@dataclass(frozen=True)
class EligibleMachine:
    machine_id: str
    duration: int


@dataclass(frozen=True)
class Operation:
    id: str
    eligible_machines: tuple[EligibleMachine, ...]


@dataclass(frozen=True)
class Job:
    id: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Problem:
    machines: tuple[Machine, ...]
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Assignment:
    job_id: str
    operation_id: str
    machine_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Solution:
    """What a solver returns: assignments and how good they are known to be."""

    assignments: tuple[Assignment, ...]
    status: SolveStatus
    solver: str

    @property
    def makespan(self) -> int:
        return max((a.end for a in self.assignments), default=0)


@dataclass(frozen=True)
class Schedule:
    """A stored solution of a problem."""

    id: str
    created_at: datetime
    objective: Objective
    problem: Problem
    solution: Solution
