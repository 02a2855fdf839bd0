"""Where schedules are stored: the scheduling service's own tables."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, Text, select, tuple_
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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
    Schedule,
    SetupTime,
    Solution,
    SolveStatus,
)

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class ScheduleRow(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    objective: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    makespan: Mapped[int] = mapped_column(BigInteger)
    solver: Mapped[str] = mapped_column(String(64))
    problem: Mapped[dict[str, Any]] = mapped_column(JSON)
    assignments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    objective_value: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    lower_bound: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    wall_time_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    status_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    weights: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    moved_operations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    based_on: Mapped[str] = mapped_column(String(32), default="", server_default="")
    notes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


metadata = Base.metadata


def problem_from_document(document: dict[str, Any]) -> Problem:
    # Documents written before a field existed lack it: the domain default applies.
    return Problem(
        machines=tuple(
            Machine(
                m["id"],
                m.get("display_name", ""),
                tuple(Interval(**w) for w in m.get("unavailable", ())),
            )
            for m in document["machines"]
        ),
        jobs=tuple(
            Job(
                id=job["id"],
                operations=tuple(
                    Operation(
                        id=op["id"],
                        eligible_machines=tuple(
                            EligibleMachine(**e) for e in op["eligible_machines"]
                        ),
                    )
                    for op in job["operations"]
                ),
                release=job.get("release", 0),
                due=job.get("due", 0),
                weight=job.get("weight", 1),
                deadline=job.get("deadline", 0),
            )
            for job in document["jobs"]
        ),
        precedences=tuple(
            Precedence(OperationRef(**p["before"]), OperationRef(**p["after"]))
            for p in document.get("precedences", ())
        ),
        setups=tuple(SetupTime(**s) for s in document.get("setups", ())),
    )


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_schedule(row: ScheduleRow) -> Schedule:
    return Schedule(
        id=row.id,
        created_at=_as_utc(row.created_at),
        objective=Objective(row.objective),
        problem=problem_from_document(row.problem),
        solution=Solution(
            assignments=tuple(Assignment(**a) for a in row.assignments),
            status=SolveStatus(row.status),
            solver=row.solver,
            objective_value=row.objective_value or 0,
            lower_bound=row.lower_bound or 0,
            wall_time_s=row.wall_time_s or 0.0,
            reason=row.status_reason or "",
            moved_operations=row.moved_operations or 0,
            notes=tuple(row.notes or ()),
        ),
        weights=ObjectiveWeights(**row.weights) if row.weights else ObjectiveWeights(),
        based_on=row.based_on or "",
    )


class ScheduleRepository:
    """Schedules in the database, through the session of one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, schedule: Schedule) -> None:
        solution = schedule.solution
        self._session.add(
            ScheduleRow(
                id=schedule.id,
                created_at=schedule.created_at,
                objective=schedule.objective.value,
                status=solution.status.value,
                makespan=solution.makespan,
                solver=solution.solver,
                problem=asdict(schedule.problem),
                assignments=[asdict(a) for a in solution.assignments],
                objective_value=solution.objective_value,
                lower_bound=solution.lower_bound,
                wall_time_s=solution.wall_time_s,
                status_reason=solution.reason,
                weights=asdict(schedule.weights),
                moved_operations=solution.moved_operations,
                based_on=schedule.based_on,
                notes=list(solution.notes),
            )
        )

    def get(self, schedule_id: str) -> Schedule | None:
        row = self._session.get(ScheduleRow, schedule_id)
        return None if row is None else _to_schedule(row)

    def list_newest_first(
        self, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Schedule]:
        """Up to ``limit`` schedules older than the ``(created_at, id)`` cursor."""
        query = select(ScheduleRow).order_by(ScheduleRow.created_at.desc(), ScheduleRow.id.desc())
        if after is not None:
            query = query.where(tuple_(ScheduleRow.created_at, ScheduleRow.id) < after)
        return [_to_schedule(row) for row in self._session.scalars(query.limit(limit))]
