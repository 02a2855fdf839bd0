"""Readings grouped into time steps: one row per distinct time, one column per sensor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from services.maintenance.domain.readings import Reading


@dataclass(frozen=True)
class Steps:
    """Complete time steps, oldest first: ``values`` is (steps, sensors)."""

    times: list[datetime]
    sensors: tuple[str, ...]
    values: NDArray[np.float64]
    settings: NDArray[np.float64]
    incomplete: list[tuple[datetime, list[str]]]


def to_steps(
    readings: Iterable[Reading],
    sensors: Sequence[str],
    settings: Sequence[str] = (),
    default_settings: Sequence[float] | None = None,
) -> Steps:
    """Pivot readings; steps lacking a sensor are left out and listed in ``incomplete``.

    A step's settings are taken from any of its readings that carries them; missing ones
    take ``default_settings`` (or 0).
    """
    wanted = set(sensors)
    by_time: dict[datetime, dict[str, float]] = {}
    settings_by_time: dict[datetime, dict[str, float]] = {}
    for reading in readings:
        if reading.sensor not in wanted:
            continue
        by_time.setdefault(reading.time, {})[reading.sensor] = reading.value
        known = settings_by_time.setdefault(reading.time, {})
        for name in settings:
            if name in reading.settings:
                known[name] = reading.settings[name]
    defaults = list(default_settings) if default_settings is not None else [0.0] * len(settings)
    times, rows, setting_rows, incomplete = [], [], [], []
    for time in sorted(by_time):
        step = by_time[time]
        missing = [s for s in sensors if s not in step]
        if missing:
            incomplete.append((time, missing))
            continue
        times.append(time)
        rows.append([step[s] for s in sensors])
        known = settings_by_time[time]
        setting_rows.append([known.get(n, d) for n, d in zip(settings, defaults, strict=True)])
    return Steps(
        times=times,
        sensors=tuple(sensors),
        values=np.asarray(rows, dtype=np.float64).reshape(len(rows), len(sensors)),
        settings=np.asarray(setting_rows, dtype=np.float64).reshape(len(rows), len(settings)),
        incomplete=incomplete,
    )
