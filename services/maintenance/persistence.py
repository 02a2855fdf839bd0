"""Where readings are stored: the maintenance service's own tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pg_sql
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Integer,
    String,
    column,
    delete,
    func,
    select,
    table,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.maintenance.domain.alerts import Alert, Rule, RuleKind, Severity
from services.maintenance.domain.anomaly import AnomalyModel
from services.maintenance.domain.readings import IngestResult, MachineSummary, Reading
from services.maintenance.reading_columns import ReadingColumns

MIGRATIONS = Path(__file__).parent / "migrations"
# Batches at least this large take the COPY path on PostgreSQL.
COPY_FROM = 200


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


class AlertRuleRow(Base):
    __tablename__ = "alert_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    machine_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[int] = mapped_column(Integer)
    severity: Mapped[int] = mapped_column(Integer)
    sensor: Mapped[str] = mapped_column(String(128))
    lower_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    rul_horizon_cycles: Mapped[float] = mapped_column(Float)
    failure_probability: Mapped[float] = mapped_column(Float)
    description: Mapped[str] = mapped_column(String(1000))


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(36))
    machine_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[int] = mapped_column(Integer)
    severity: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(2000))
    sensor: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    raised_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_time: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    acknowledged_by: Mapped[str] = mapped_column(String(128))
    # "<rule>|<machine>" while open, NULL once acknowledged: the unique index lets exactly
    # one replica raise the open alert of a rule and machine.
    open_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)


class AnomalyModelRow(Base):
    __tablename__ = "anomaly_models"

    machine_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    trained_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


metadata = Base.metadata
# The columns of ``ReadingColumns.copy_text``, in its order.
COPY_COLUMNS = ("machine_id", "sensor", "time", "value", "settings")


def _copy_rows(raw: psycopg.Connection[Any], target: pg_sql.Identifier, rows: str) -> None:
    columns = pg_sql.SQL(", ").join(map(pg_sql.Identifier, COPY_COLUMNS))
    statement = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(rows)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_reading(row: ReadingRow) -> Reading:
    return Reading(row.machine_id, row.sensor, _utc(row.time), row.value, dict(row.settings))


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class ReadingRepository:
    """Readings in the database, through the session of one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_new(self, batch: ReadingColumns) -> IngestResult:
        """Insert the readings not stored yet; existing keys are left as they are, and of
        a key repeated within the batch the first reading wins."""
        unique = batch.first_of_each_key()
        if self._session.get_bind().dialect.name == "postgresql" and len(unique) >= COPY_FROM:
            stored = self._copy_new(unique)
        else:
            rows: list[dict[str, Any]] = [
                {
                    "machine_id": r.machine_id,
                    "sensor": r.sensor,
                    "time": r.time,
                    "value": r.value,
                    "settings": dict(r.settings),
                }
                for r in unique.readings()
            ]
            statement = (
                _insert(self._session)(ReadingRow)
                .on_conflict_do_nothing()
                .returning(ReadingRow.machine_id)
            )
            stored = len(self._session.execute(statement, rows).all())
        return IngestResult(stored=stored, duplicates=len(batch) - stored)

    def _copy_new(self, batch: ReadingColumns) -> int:
        """Bulk path on PostgreSQL, in the unit of work's transaction. New readings (the
        usual case) are COPYed straight into the table inside a savepoint; a batch holding a
        stored key undoes that and goes through a session-local staging table and one
        INSERT ... SELECT ... ON CONFLICT DO NOTHING."""
        connection = self._session.connection()
        raw: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        rows = batch.copy_text()
        schema = connection.get_execution_options().get("schema_translate_map", {}).get(None)
        readings = pg_sql.Identifier(*filter(None, [schema, ReadingRow.__tablename__]))
        try:
            with raw.transaction():
                _copy_rows(raw, readings, rows)
            return len(batch)
        except psycopg.errors.UniqueViolation:
            pass
        with raw.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS incoming_readings (machine_id text, "
                "sensor text, time timestamptz, value float8, settings json) "
                "ON COMMIT DELETE ROWS"
            )
        _copy_rows(raw, pg_sql.Identifier("incoming_readings"), rows)
        staged = table(
            "incoming_readings",
            column("machine_id"),
            column("sensor"),
            column("time"),
            column("value"),
            column("settings"),
            # Explicit, so the engine's schema translation leaves the temp table alone.
            schema="pg_temp",
        )
        source = select(
            staged.c.machine_id, staged.c.sensor, staged.c.time, staged.c.value, staged.c.settings
        )
        statement = (
            postgresql.insert(ReadingRow)
            .from_select(list(COPY_COLUMNS), source)
            .on_conflict_do_nothing()
        )
        # The row count is the number inserted; RETURNING would ship every new key back.
        inserted = connection.execute(statement, execution_options={"preserve_rowcount": True})
        stored = inserted.rowcount
        connection.exec_driver_sql("TRUNCATE incoming_readings")
        return stored

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

    def list_machines(self, *, after: str | None, limit: int) -> list[MachineSummary]:
        query = select(
            ReadingRow.machine_id,
            func.count(func.distinct(ReadingRow.sensor)),
            func.count(),
            func.min(ReadingRow.time),
            func.max(ReadingRow.time),
        ).group_by(ReadingRow.machine_id)
        if after is not None:
            query = query.where(ReadingRow.machine_id > after)
        query = query.order_by(ReadingRow.machine_id).limit(limit)
        return [
            MachineSummary(m, int(sensors), int(count), _utc(first), _utc(last))
            for m, sensors, count, first, last in self._session.execute(query)
        ]

    def page(
        self,
        machine_id: str,
        *,
        sensors: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Reading]:
        query = select(ReadingRow).where(ReadingRow.machine_id == machine_id)
        if sensors:
            query = query.where(ReadingRow.sensor.in_(list(sensors)))
        if start is not None:
            query = query.where(ReadingRow.time >= start.astimezone(UTC))
        if end is not None:
            query = query.where(ReadingRow.time < end.astimezone(UTC))
        if after is not None:
            query = query.where(
                tuple_(ReadingRow.time, ReadingRow.sensor) > (after[0].astimezone(UTC), after[1])
            )
        query = query.order_by(ReadingRow.time, ReadingRow.sensor).limit(limit)
        return [_to_reading(row) for row in self._session.scalars(query)]

    def history(self, machine_id: str, sensors: Sequence[str], *, last_steps: int) -> list[Reading]:
        """Readings of ``sensors`` at the machine's last ``last_steps`` distinct times."""
        times = (
            select(ReadingRow.time)
            .where(ReadingRow.machine_id == machine_id, ReadingRow.sensor.in_(list(sensors)))
            .distinct()
            .order_by(ReadingRow.time.desc())
            .limit(last_steps)
            .subquery()
        )
        earliest = self._session.scalar(select(func.min(times.c.time)))
        if earliest is None:
            return []
        query = select(ReadingRow).where(
            ReadingRow.machine_id == machine_id,
            ReadingRow.sensor.in_(list(sensors)),
            ReadingRow.time >= earliest,
        )
        return [_to_reading(row) for row in self._session.scalars(query)]

    def has_machine(self, machine_id: str) -> bool:
        query = select(ReadingRow.machine_id).where(ReadingRow.machine_id == machine_id).limit(1)
        return self._session.scalar(query) is not None

    def sensors_of(self, machine_id: str) -> list[str]:
        query = (
            select(ReadingRow.sensor)
            .where(ReadingRow.machine_id == machine_id)
            .distinct()
            .order_by(ReadingRow.sensor)
        )
        return list(self._session.scalars(query))


def _to_rule(row: AlertRuleRow) -> Rule:
    return Rule(
        id=row.id,
        machine_id=row.machine_id,
        kind=RuleKind(row.kind),
        severity=Severity(row.severity),
        sensor=row.sensor,
        lower_limit=row.lower_limit,
        upper_limit=row.upper_limit,
        rul_horizon_cycles=row.rul_horizon_cycles,
        failure_probability=row.failure_probability,
        description=row.description,
    )


def _to_alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        rule_id=row.rule_id,
        machine_id=row.machine_id,
        kind=RuleKind(row.kind),
        severity=Severity(row.severity),
        message=row.message,
        sensor=row.sensor,
        value=row.value,
        raised_time=_utc(row.raised_time),
        acknowledged_time=_utc(row.acknowledged_time) if row.acknowledged_time else None,
        acknowledged_by=row.acknowledged_by,
    )


class AlertRepository:
    """Alert rules, alerts and per-machine anomaly models, in one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_rule(self, rule: Rule) -> None:
        self._session.add(
            AlertRuleRow(
                id=rule.id,
                machine_id=rule.machine_id,
                kind=int(rule.kind),
                severity=int(rule.severity),
                sensor=rule.sensor,
                lower_limit=rule.lower_limit,
                upper_limit=rule.upper_limit,
                rul_horizon_cycles=rule.rul_horizon_cycles,
                failure_probability=rule.failure_probability,
                description=rule.description,
            )
        )

    def rules(self, machine_id: str = "", kind: RuleKind | None = None) -> list[Rule]:
        query = select(AlertRuleRow).order_by(AlertRuleRow.id)
        if machine_id:
            query = query.where(AlertRuleRow.machine_id.in_(["", machine_id]))
        if kind is not None:
            query = query.where(AlertRuleRow.kind == int(kind))
        return [_to_rule(row) for row in self._session.scalars(query)]

    def delete_rule(self, rule_id: str) -> bool:
        result = self._session.execute(delete(AlertRuleRow).where(AlertRuleRow.id == rule_id))
        return bool(getattr(result, "rowcount", 0))

    def add_if_none_open(self, alert: Alert) -> bool:
        """Store ``alert`` unless its rule has an open alert on the machine."""
        statement = (
            _insert(self._session)(AlertRow)
            .values(
                id=alert.id,
                rule_id=alert.rule_id,
                machine_id=alert.machine_id,
                kind=int(alert.kind),
                severity=int(alert.severity),
                message=alert.message[:2000],
                sensor=alert.sensor,
                value=alert.value,
                raised_time=alert.raised_time.astimezone(UTC),
                acknowledged_time=None,
                acknowledged_by="",
                open_key=alert.open_key,
            )
            .on_conflict_do_nothing()
            .returning(AlertRow.id)
        )
        return self._session.execute(statement).first() is not None

    def acknowledge(self, alert_id: str, by: str, at: datetime) -> Alert | None:
        row = self._session.get(AlertRow, alert_id, with_for_update=True)
        if row is None:
            return None
        if row.acknowledged_time is None:
            row.acknowledged_time = at.astimezone(UTC)
            row.acknowledged_by = by
            row.open_key = None
            self._session.flush()
        return _to_alert(row)

    def open_alerts(self, machine_id: str, limit: int = 100) -> list[Alert]:
        query = (
            select(AlertRow)
            .where(AlertRow.machine_id == machine_id, AlertRow.acknowledged_time.is_(None))
            .order_by(AlertRow.raised_time.desc())
            .limit(limit)
        )
        return [_to_alert(row) for row in self._session.scalars(query)]

    def save_anomaly_model(self, machine_id: str, model: AnomalyModel, at: datetime) -> None:
        row = self._session.get(AnomalyModelRow, machine_id)
        if row is None:
            self._session.add(
                AnomalyModelRow(machine_id=machine_id, model=model.to_json(), trained_time=at)
            )
        else:
            row.model, row.trained_time = model.to_json(), at

    def anomaly_model(self, machine_id: str) -> AnomalyModel | None:
        row = self._session.get(AnomalyModelRow, machine_id)
        return None if row is None else AnomalyModel.from_json(row.model)
