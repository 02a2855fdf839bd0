"""Where readings are stored: the maintenance service's own tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, String, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.maintenance.domain.readings import IngestResult, Reading

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class ReadingRow(Base):
    __tablename__ = "sensor_readings"

    # The natural key makes a retried ingestion idempotent.
    machine_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(128), primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    settings: Mapped[dict[str, float]] = mapped_column(JSON)


metadata = Base.metadata


def _to_reading(row: ReadingRow) -> Reading:
    # SQLite hands back naive datetimes; everything stored is UTC.
    moment = row.time if row.time.tzinfo else row.time.replace(tzinfo=UTC)
    return Reading(row.machine_id, row.sensor, moment, row.value, dict(row.settings))


class ReadingRepository:
    """Readings in the database, through the session of one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_new(self, readings: Sequence[Reading]) -> IngestResult:
        """Insert the readings not stored yet; existing keys are left as they are."""
        rows: list[dict[str, Any]] = [
            {
                "machine_id": r.machine_id,
                "sensor": r.sensor,
                "time": r.time.astimezone(UTC),
                "value": r.value,
                "settings": dict(r.settings),
            }
            for r in readings
        ]
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(ReadingRow).on_conflict_do_nothing().returning(ReadingRow.machine_id)
        stored = len(self._session.execute(statement, rows).all())
        return IngestResult(stored=stored, duplicates=len(rows) - stored)

    def latest_per_sensor(self, machine_id: str) -> list[Reading]:
        latest = (
            select(ReadingRow.sensor, func.max(ReadingRow.time).label("time"))
            .where(ReadingRow.machine_id == machine_id)
            .group_by(ReadingRow.sensor)
            .subquery()
        )
        query = (
            select(ReadingRow)
            .join(
                latest, (ReadingRow.sensor == latest.c.sensor) & (ReadingRow.time == latest.c.time)
            )
            .where(ReadingRow.machine_id == machine_id)
            .order_by(ReadingRow.sensor)
        )
        return [_to_reading(row) for row in self._session.scalars(query)]
