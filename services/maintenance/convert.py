"""Between protobuf messages and domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from google.protobuf import timestamp_pb2
from manufacturing.maintenance.v1 import alert_pb2, sensor_reading_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb

from services.maintenance.domain.alerts import Alert, Rule, RuleKind, Severity
from services.maintenance.domain.readings import MachineSummary, Reading
from services.maintenance.domain.rul import RulEstimate
from services.maintenance.reading_columns import (
    ReadingColumns,
    SettingsItems,
    micros_since_epoch,
)
from services.runtime.errors import Violations


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment)
    return message


def optional_time(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return message.ToDatetime(tzinfo=UTC) if present else None


def reading_from_proto(message: sensor_reading_pb2.SensorReading) -> Reading:
    # An unset time stays at the epoch, which validation rejects.
    return Reading(
        machine_id=message.machine_id,
        sensor=message.sensor,
        time=message.time.ToDatetime(tzinfo=UTC),
        value=message.value,
        settings=dict(message.settings),
    )


def reading_columns_from_proto(
    messages: Sequence[sensor_reading_pb2.SensorReading],
) -> ReadingColumns:
    """A batch field by field: one pass over the messages per field, numbers into arrays.
    Few objects outlive a pass (each reading's time is read where it is used, equal
    settings share one tuple), since the garbage collector's work grows with them."""
    count = len(messages)
    shared: dict[SettingsItems, SettingsItems] = {}
    return ReadingColumns(
        machine_ids=[m.machine_id for m in messages],
        sensors=[m.sensor for m in messages],
        micros=micros_since_epoch(
            np.fromiter((m.time.seconds for m in messages), np.int64, count),
            np.fromiter((m.time.nanos for m in messages), np.int64, count),
        ),
        values=np.fromiter((m.value for m in messages), np.float64, count),
        settings=[
            shared.setdefault(items, items)
            for items in (tuple(m.settings.items()) for m in messages)
        ],
    )


def reading_to_proto(reading: Reading) -> sensor_reading_pb2.SensorReading:
    return sensor_reading_pb2.SensorReading(
        machine_id=reading.machine_id,
        sensor=reading.sensor,
        time=timestamp(reading.time),
        value=reading.value,
        settings=dict(reading.settings),
    )


def machine_to_proto(machine: MachineSummary) -> alert_pb2.Machine:
    return alert_pb2.Machine(
        machine_id=machine.machine_id,
        sensor_count=machine.sensor_count,
        reading_count=machine.reading_count,
        first_reading_time=timestamp(machine.first_time),
        last_reading_time=timestamp(machine.last_time),
    )


def rule_from_proto(message: alert_pb2.AlertRule, path: str = "rule") -> Rule:
    violations = Violations()
    kinds = {int(k) for k in RuleKind}
    severities = {int(s) for s in Severity}
    violations.check(int(message.kind) in kinds, f"{path}.kind", "must be set to a known kind")
    violations.check(
        int(message.severity) in severities, f"{path}.severity", "must be P0, P1 or P2"
    )
    violations.raise_if_any()
    return Rule(
        id=message.id,
        machine_id=message.machine_id,
        kind=RuleKind(int(message.kind)),
        severity=Severity(int(message.severity)),
        sensor=message.sensor,
        lower_limit=message.lower_limit if message.HasField("lower_limit") else None,
        upper_limit=message.upper_limit if message.HasField("upper_limit") else None,
        rul_horizon_cycles=message.rul_horizon_cycles,
        failure_probability=message.failure_probability,
        description=message.description,
    )


def rule_to_proto(rule: Rule) -> alert_pb2.AlertRule:
    message = alert_pb2.AlertRule(
        id=rule.id,
        machine_id=rule.machine_id,
        kind=alert_pb2.RuleKind.ValueType(int(rule.kind)),
        severity=alert_pb2.Severity.ValueType(int(rule.severity)),
        sensor=rule.sensor,
        rul_horizon_cycles=rule.rul_horizon_cycles,
        failure_probability=rule.failure_probability,
        description=rule.description,
    )
    if rule.lower_limit is not None:
        message.lower_limit = rule.lower_limit
    if rule.upper_limit is not None:
        message.upper_limit = rule.upper_limit
    return message


def alert_to_proto(alert: Alert) -> alert_pb2.Alert:
    message = alert_pb2.Alert(
        id=alert.id,
        rule_id=alert.rule_id,
        machine_id=alert.machine_id,
        kind=alert_pb2.RuleKind.ValueType(int(alert.kind)),
        severity=alert_pb2.Severity.ValueType(int(alert.severity)),
        message=alert.message,
        sensor=alert.sensor,
        value=alert.value,
        raised_time=timestamp(alert.raised_time),
        acknowledged=alert.acknowledged_time is not None,
        acknowledged_by=alert.acknowledged_by,
    )
    if alert.acknowledged_time is not None:
        message.acknowledged_time.CopyFrom(timestamp(alert.acknowledged_time))
    return message


def remaining_life_to_proto(estimate: RulEstimate, model_version: str) -> pb.RemainingLife:
    return pb.RemainingLife(
        rul_cycles=estimate.rul,
        rul_lower_cycles=estimate.lower,
        rul_upper_cycles=estimate.upper,
        health_index=estimate.health_index,
        cycles_used=estimate.cycles_used,
        model_version=model_version,
    )
