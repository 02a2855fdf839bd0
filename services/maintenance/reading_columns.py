"""A batch of readings as columns, the shape of ingestion's hot path: a batch is checked
and encoded for COPY with whole-array steps instead of one Python object per reading."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from services.maintenance.domain.readings import (
    EARLIEST,
    MAX_CLOCK_SKEW,
    MAX_ID_LENGTH,
    MAX_SETTINGS,
    Reading,
    Rejection,
    split_valid,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


# Times outside what a datetime can hold are clipped to its ends, which validation rejects.
MIN_MICROS = _micros(datetime.min.replace(tzinfo=UTC))
MAX_MICROS = _micros(datetime.max.replace(tzinfo=UTC))
# Characters COPY's text format reads as delimiters or escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

SettingsItems = tuple[tuple[str, float], ...]


def micros_since_epoch(seconds: np.ndarray, nanos: np.ndarray) -> np.ndarray:
    """Timestamp fields as microseconds since the epoch, nanoseconds rounded toward zero
    as protobuf's ``ToDatetime`` does."""
    clipped = np.clip(seconds, MIN_MICROS // 1_000_000, MAX_MICROS // 1_000_000)
    micros = clipped * 1_000_000 + np.sign(nanos) * (np.abs(nanos) // 1000)
    return np.asarray(np.clip(micros, MIN_MICROS, MAX_MICROS), np.int64)


@dataclass(frozen=True)
class ReadingColumns:
    machine_ids: list[str]
    sensors: list[str]
    micros: np.ndarray  # int64 microseconds since the epoch, UTC
    values: np.ndarray  # float64
    settings: list[SettingsItems]

    def __len__(self) -> int:
        return len(self.machine_ids)

    def reading(self, position: int) -> Reading:
        return Reading(
            self.machine_ids[position],
            self.sensors[position],
            EPOCH + timedelta(microseconds=int(self.micros[position])),
            float(self.values[position]),
            dict(self.settings[position]),
        )

    def readings(self) -> list[Reading]:
        return [self.reading(position) for position in range(len(self))]

    def readings_of(self, sensors: Collection[str]) -> list[Reading]:
        """The readings of ``sensors`` only, for rules that look at a few sensors."""
        return [self.reading(p) for p, sensor in enumerate(self.sensors) if sensor in sensors]

    def take(self, positions: Sequence[int] | np.ndarray) -> ReadingColumns:
        return ReadingColumns(
            machine_ids=[self.machine_ids[p] for p in positions],
            sensors=[self.sensors[p] for p in positions],
            micros=self.micros[positions],
            values=self.values[positions],
            settings=[self.settings[p] for p in positions],
        )

    def first_of_each_key(self) -> ReadingColumns:
        """Without repeats of (machine, sensor, time): the first reading of a key wins."""
        keys = list(zip(self.machine_ids, self.sensors, self.micros.tolist(), strict=True))
        # Assigned last to first, so each key ends up holding its earliest position.
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        if len(first) == len(keys):
            return self
        return self.take(sorted(first.values()))

    def copy_text(self) -> str:
        """The rows in COPY's text format: machine, sensor, time, value, settings (JSON)."""
        machines = _escaped(self.machine_ids)
        sensors = _escaped(self.sensors)
        times = np.datetime_as_string(self.micros.astype("datetime64[us]"), timezone="UTC")
        settings_json = {
            items: json.dumps(dict(items)).translate(_COPY_ESCAPES) for items in set(self.settings)
        }
        return "".join(
            f"{machines[m]}\t{sensors[s]}\t{t}\t{v!r}\t{settings_json[j]}\n"
            for m, s, t, v, j in zip(
                self.machine_ids,
                self.sensors,
                times.tolist(),
                self.values.tolist(),
                self.settings,
                strict=True,
            )
        )


def _escaped(texts: list[str]) -> dict[str, str]:
    return {text: text.translate(_COPY_ESCAPES) for text in set(texts)}


def _ids_fit(texts: list[str]) -> np.ndarray:
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    return (lengths > 0) & (lengths <= MAX_ID_LENGTH)


def _settings_fit(items: SettingsItems) -> bool:
    return len(items) <= MAX_SETTINGS and all(
        0 < len(key) <= MAX_ID_LENGTH and math.isfinite(value) for key, value in items
    )


def split_valid_columns(
    columns: ReadingColumns, now: datetime
) -> tuple[ReadingColumns, list[Rejection]]:
    """The same verdicts as ``split_valid``: whole-column checks find the readings that
    may break a rule, and only those go through the rules reading by reading, which name
    the field and reason."""
    settings_fit = {items: _settings_fit(items) for items in set(columns.settings)}
    fits = (
        _ids_fit(columns.machine_ids)
        & _ids_fit(columns.sensors)
        & (columns.micros >= _micros(EARLIEST))
        & (columns.micros <= _micros(now + MAX_CLOCK_SKEW))
        & np.isfinite(columns.values)
        & np.fromiter(map(settings_fit.__getitem__, columns.settings), bool, len(columns))
    )
    suspects = np.flatnonzero(~fits).tolist()
    if not suspects:
        return columns, []
    _, found = split_valid([columns.reading(p) for p in suspects], now)
    rejected = []
    for rejection in found:
        position = suspects[rejection.index]
        # split_valid numbered the suspects; the reply names positions in the batch.
        field = rejection.field.replace(f"readings[{rejection.index}]", f"readings[{position}]", 1)
        rejected.append(Rejection(position, field, rejection.reason))
    keep = np.ones(len(columns), bool)
    keep[[r.index for r in rejected]] = False
    return columns.take(np.flatnonzero(keep)), rejected
