"""The quality service's own tables: measurements, and which model versions serve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class MeasurementRow(Base):
    """One subgroup of one characteristic, numbered in arrival order."""

    __tablename__ = "measurements"

    characteristic: Mapped[str] = mapped_column(String(128), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    values: Mapped[list[float]] = mapped_column(JSON)
    count: Mapped[float] = mapped_column(Float, default=0.0)
    size: Mapped[float] = mapped_column(Float, default=0.0)
    value_count: Mapped[int] = mapped_column(Integer)


class ModelActivationRow(Base):
    """One promotion of a model version; a name's last row is the version serving it.
    Every replica reads the same rows, so all serve the same version."""

    __tablename__ = "model_activations"

    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # 1, 2, ... per name; two replicas promoting at once collide on the key, not overwrite.
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


metadata = Base.metadata


@dataclass(frozen=True)
class StoredSubgroup:
    sequence: int
    values: tuple[float, ...]
    count: float
    size: float
    taken_at: datetime | None


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MeasurementRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def append(
        self, characteristic: str, subgroups: Sequence[StoredSubgroup], *, now: datetime
    ) -> int:
        """Stores the subgroups after the existing ones; returns the new total."""
        last = self._session.scalar(
            select(func.max(MeasurementRow.sequence)).where(
                MeasurementRow.characteristic == characteristic
            )
        )
        start = (last or 0) + 1
        for offset, subgroup in enumerate(subgroups):
            self._session.add(
                MeasurementRow(
                    characteristic=characteristic,
                    sequence=start + offset,
                    taken_at=subgroup.taken_at,
                    recorded_at=now,
                    values=list(subgroup.values),
                    count=subgroup.count,
                    size=subgroup.size,
                    value_count=len(subgroup.values),
                )
            )
        self._session.flush()
        return start + len(subgroups) - 1

    def latest(self, characteristic: str, limit: int) -> list[StoredSubgroup]:
        """The last ``limit`` subgroups in arrival order."""
        rows = self._session.scalars(
            select(MeasurementRow)
            .where(MeasurementRow.characteristic == characteristic)
            .order_by(MeasurementRow.sequence.desc())
            .limit(limit)
        ).all()
        return [
            StoredSubgroup(
                sequence=row.sequence,
                values=tuple(float(v) for v in row.values),
                count=row.count,
                size=row.size,
                taken_at=_as_utc(row.taken_at),
            )
            for row in reversed(rows)
        ]


class ActivationRepository:
    """Promotion history per model name, oldest first (see ``registry.Activations``)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def histories(self) -> dict[str, list[str]]:
        rows = self._session.execute(
            select(ModelActivationRow.model_name, ModelActivationRow.version).order_by(
                ModelActivationRow.model_name, ModelActivationRow.position
            )
        ).all()
        found: dict[str, list[str]] = {}
        for name, version in rows:
            found.setdefault(name, []).append(version)
        return found

    def _last_position(self, name: str) -> int:
        last = self._session.scalar(
            select(func.max(ModelActivationRow.position)).where(
                ModelActivationRow.model_name == name
            )
        )
        return int(last or 0)

    def append(self, name: str, version: str, now: datetime) -> None:
        self._session.add(
            ModelActivationRow(
                model_name=name,
                position=self._last_position(name) + 1,
                version=version,
                activated_at=now,
            )
        )
        self._session.flush()

    def remove_last(self, name: str) -> None:
        self._session.execute(
            delete(ModelActivationRow).where(
                ModelActivationRow.model_name == name,
                ModelActivationRow.position == self._last_position(name),
            )
        )
