"""Sensor readings and the rules a reading must follow to be stored."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.runtime.errors import InvalidArgument, Violations

MAX_ID_LENGTH = 128
MAX_SETTINGS = 32
MAX_BATCH = 10_000
# Clocks drift; a reading from further ahead than this is a wrong clock, not the future.
MAX_CLOCK_SKEW = timedelta(days=1)
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Reading:
    machine_id: str
    sensor: str
    time: datetime
    value: float
    settings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str


def split_valid(
    readings: list[Reading], now: datetime, path: str = "readings"
) -> tuple[list[Reading], list[Rejection]]:
    """The readings that may be stored, and why each other one may not (first reason)."""
    valid: list[Reading] = []
    rejected: list[Rejection] = []
    for index, reading in enumerate(readings):
        violations = Violations()
        validate_reading(reading, now, violations, f"{path}[{index}]")
        try:
            violations.raise_if_any()
        except InvalidArgument as error:
            first = error.violations[0]
            rejected.append(Rejection(index, first.field, first.description))
        else:
            valid.append(reading)
    return valid, rejected


def validate_batch(
    readings: list[Reading], now: datetime, violations: Violations, path: str = "readings"
) -> None:
    if not violations.check(
        0 < len(readings) <= MAX_BATCH, path, f"a batch holds 1 to {MAX_BATCH} readings"
    ):
        return
    for index, reading in enumerate(readings):
        validate_reading(reading, now, violations, f"{path}[{index}]")


def validate_reading(reading: Reading, now: datetime, violations: Violations, at: str) -> None:
    for name in ("machine_id", "sensor"):
        value = getattr(reading, name)
        violations.check(
            0 < len(value) <= MAX_ID_LENGTH,
            f"{at}.{name}",
            f"must be 1 to {MAX_ID_LENGTH} characters",
        )
    violations.check(
        EARLIEST <= reading.time <= now + MAX_CLOCK_SKEW,
        f"{at}.time",
        "must be set, after 1970-01-02 and not more than a day ahead of the server clock",
    )
    violations.check(math.isfinite(reading.value), f"{at}.value", "must be finite")
    violations.check(
        len(reading.settings) <= MAX_SETTINGS,
        f"{at}.settings",
        f"at most {MAX_SETTINGS} settings",
    )
    for key, setting in reading.settings.items():
        violations.check(
            0 < len(key) <= MAX_ID_LENGTH and math.isfinite(setting),
            f"{at}.settings[{key[:MAX_ID_LENGTH]!r}]",
            "names must be 1 to 128 characters and values finite",
        )


@dataclass(frozen=True)
class MachineSummary:
    machine_id: str
    sensor_count: int
    reading_count: int
    first_time: datetime
    last_time: datetime
