"""The job-shop problem and its schedules, as plain values.

Times are integer time units from the start of the planning horizon. Every extension
beyond the classic job shop (downtime, release and due dates, extra precedences,
sequence-dependent setups, hard deadlines) defaults to "absent", so a classic
instance is just machines and jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Objective(StrEnum):
    MAKESPAN = "makespan"
    TOTAL_WEIGHTED_TARDINESS = "total_weighted_tardiness"
    WEIGHTED_SUM = "weighted_sum"


class SolveStatus(StrEnum):
    FEASIBLE = "feasible"
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    # The time ran out before any schedule meeting every hard constraint was found.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Interval:
    """A half-open stretch of time ``[start, end)``."""

    start: int
    end: int


@dataclass(frozen=True)
class Machine:
    id: str
    display_name: str = ""
    # Times the machine cannot process anything (maintenance, breakdowns, shifts off).
    unavailable: tuple[Interval, ...] = ()


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
    release: int = 0
    due: int = 0  # 0: no due date (no tardiness is counted)
    weight: int = 1
    deadline: int = 0  # 0: none; otherwise the job must end by then (a hard constraint)


@dataclass(frozen=True)
class OperationRef:
    job_id: str
    operation_id: str


@dataclass(frozen=True)
class Precedence:
    """``after`` may start only when ``before`` has ended (beyond the order within jobs)."""

    before: OperationRef
    after: OperationRef


@dataclass(frozen=True)
class SetupTime:
    """Time a machine needs between an operation of one job and one of another."""

    machine_id: str
    from_job_id: str
    to_job_id: str
    duration: int


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the combined objective: makespan and total weighted tardiness."""

    makespan: int = 1
    tardiness: int = 1


@dataclass(frozen=True)
class Problem:
    machines: tuple[Machine, ...]
    jobs: tuple[Job, ...]
    precedences: tuple[Precedence, ...] = ()
    setups: tuple[SetupTime, ...] = ()


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
    objective_value: int = 0
    lower_bound: int = 0
    wall_time_s: float = 0.0
    # Why the problem has no schedule (INFEASIBLE) or why none was found (UNKNOWN).
    reason: str = ""
    moved_operations: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def makespan(self) -> int:
        return max((a.end for a in self.assignments), default=0)

    @property
    def gap(self) -> float:
        """Relative distance of the objective to the lower bound, 0 when proven optimal."""
        if not self.assignments or self.objective_value <= 0:
            return 0.0
        return max(0.0, (self.objective_value - self.lower_bound) / self.objective_value)


@dataclass(frozen=True)
class Schedule:
    """A stored solution of a problem."""

    id: str
    created_at: datetime
    objective: Objective
    problem: Problem
    solution: Solution
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    # For a reschedule: the schedule it repairs.
    based_on: str = ""
