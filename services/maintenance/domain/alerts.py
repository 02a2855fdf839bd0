"""Alert rules and what breaks them. Storing and publishing alerts is the adapters' job."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum

from services.maintenance.domain.readings import MAX_ID_LENGTH, Reading
from services.runtime.errors import Violations


class RuleKind(IntEnum):
    THRESHOLD = 1
    ANOMALY = 2
    RUL_BELOW = 3
    FAILURE_PREDICTED = 4


class Severity(IntEnum):
    P0 = 1
    P1 = 2
    P2 = 3


@dataclass(frozen=True)
class Rule:
    id: str
    machine_id: str
    kind: RuleKind
    severity: Severity
    sensor: str = ""
    lower_limit: float | None = None
    upper_limit: float | None = None
    rul_horizon_cycles: float = 0.0
    failure_probability: float = 0.0
    description: str = ""

    def applies_to(self, machine_id: str) -> bool:
        return not self.machine_id or self.machine_id == machine_id


@dataclass(frozen=True)
class Alert:
    id: str
    rule_id: str
    machine_id: str
    kind: RuleKind
    severity: Severity
    message: str
    sensor: str
    value: float
    raised_time: datetime
    acknowledged_time: datetime | None = None
    acknowledged_by: str = ""

    @property
    def open_key(self) -> str:
        """At most one open alert per rule and machine."""
        return f"{self.rule_id}|{self.machine_id}"

    def acknowledged(self, by: str, at: datetime) -> Alert:
        return replace(self, acknowledged_time=at, acknowledged_by=by)


def validate_rule(rule: Rule, violations: Violations, path: str = "rule") -> None:
    violations.check(
        len(rule.machine_id) <= MAX_ID_LENGTH,
        f"{path}.machine_id",
        f"at most {MAX_ID_LENGTH} characters",
    )
    violations.check(rule.kind in RuleKind, f"{path}.kind", "must be set")
    violations.check(rule.severity in Severity, f"{path}.severity", "must be P0, P1 or P2")
    violations.check(len(rule.description) <= 1000, f"{path}.description", "at most 1000 chars")
    if rule.kind == RuleKind.THRESHOLD:
        violations.check(
            0 < len(rule.sensor) <= MAX_ID_LENGTH,
            f"{path}.sensor",
            "a threshold rule names its sensor",
        )
        limits = [v for v in (rule.lower_limit, rule.upper_limit) if v is not None]
        if violations.check(
            bool(limits), f"{path}.upper_limit", "set a lower limit, an upper limit or both"
        ):
            violations.check(
                all(math.isfinite(v) for v in limits), f"{path}.upper_limit", "must be finite"
            )
            if rule.lower_limit is not None and rule.upper_limit is not None:
                violations.check(
                    rule.lower_limit <= rule.upper_limit,
                    f"{path}.lower_limit",
                    "must not exceed upper_limit",
                )
    elif rule.kind == RuleKind.RUL_BELOW:
        violations.check(
            math.isfinite(rule.rul_horizon_cycles) and rule.rul_horizon_cycles > 0,
            f"{path}.rul_horizon_cycles",
            "must be more than 0",
        )
    elif rule.kind == RuleKind.FAILURE_PREDICTED:
        violations.check(
            0 < rule.failure_probability < 1,
            f"{path}.failure_probability",
            "must be between 0 and 1 (exclusive)",
        )


@dataclass(frozen=True)
class Breach:
    """A rule broken on a machine: becomes an alert unless one is open already."""

    rule: Rule
    machine_id: str
    value: float
    message: str
    sensor: str = ""


def threshold_breaches(rules: Sequence[Rule], readings: Iterable[Reading]) -> list[Breach]:
    """The first breaking reading per rule and machine (later ones add nothing)."""
    thresholds = [r for r in rules if r.kind == RuleKind.THRESHOLD]
    if not thresholds:
        return []
    by_sensor: dict[str, list[Rule]] = {}
    for rule in thresholds:
        by_sensor.setdefault(rule.sensor, []).append(rule)
    found: dict[tuple[str, str], Breach] = {}
    for reading in readings:
        for rule in by_sensor.get(reading.sensor, ()):
            key = (rule.id, reading.machine_id)
            if key in found or not rule.applies_to(reading.machine_id):
                continue
            low = rule.lower_limit is not None and reading.value < rule.lower_limit
            high = rule.upper_limit is not None and reading.value > rule.upper_limit
            if low or high:
                limit = rule.lower_limit if low else rule.upper_limit
                found[key] = Breach(
                    rule,
                    reading.machine_id,
                    reading.value,
                    f"{reading.sensor} = {reading.value:g} at {reading.time.isoformat()} is "
                    f"{'below' if low else 'above'} the limit {limit:g}",
                    sensor=reading.sensor,
                )
    return list(found.values())


def rul_breaches(rules: Sequence[Rule], machine_id: str, rul_cycles: float) -> list[Breach]:
    return [
        Breach(
            r,
            machine_id,
            rul_cycles,
            f"predicted remaining life {rul_cycles:.0f} cycles is under {r.rul_horizon_cycles:g}",
        )
        for r in rules
        if r.kind == RuleKind.RUL_BELOW
        and r.applies_to(machine_id)
        and rul_cycles < r.rul_horizon_cycles
    ]


def failure_breaches(
    rules: Sequence[Rule], machine_id: str, probability: float, mode: str
) -> list[Breach]:
    return [
        Breach(
            r,
            machine_id,
            probability,
            f"failure probability {probability:.2f} (likeliest {mode}) is over "
            f"{r.failure_probability:g}",
        )
        for r in rules
        if r.kind == RuleKind.FAILURE_PREDICTED
        and r.applies_to(machine_id)
        and probability > r.failure_probability
    ]


def anomaly_breaches(
    rules: Sequence[Rule], machine_id: str, score: float, threshold: float, when: datetime
) -> list[Breach]:
    if score <= threshold:
        return []
    return [
        Breach(
            r,
            machine_id,
            score,
            f"anomaly score {score:.2f} at {when.isoformat()} is over the threshold "
            f"{threshold:.2f}",
        )
        for r in rules
        if r.kind == RuleKind.ANOMALY and r.applies_to(machine_id)
    ]
