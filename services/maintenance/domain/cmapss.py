"""NASA C-MAPSS turbofan files: parsing and the piecewise-linear RUL target.

Rows are whitespace separated (each row ends with two spaces, so split on a regex, never
on single spaces): unit, cycle, three operating settings, 21 sensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SENSOR_NAMES = tuple(f"s{i}" for i in range(1, 22))
SETTING_NAMES = ("setting1", "setting2", "setting3")
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
# Training target: constant while healthy, then linear to failure (the usual protocol).
RUL_CAP = 125.0
_SPLIT = re.compile(r"\s+")


@dataclass(frozen=True)
class Unit:
    """One engine's run: ``settings`` is (cycles, 3), ``sensors`` is (cycles, 21)."""

    unit: int
    cycles: NDArray[np.float64]
    settings: NDArray[np.float64]
    sensors: NDArray[np.float64]

    @property
    def length(self) -> int:
        return len(self.cycles)


def parse_rows(path: Path) -> NDArray[np.float64]:
    rows = [
        [float(v) for v in _SPLIT.split(line.strip())]
        for line in path.read_text(encoding="ascii").splitlines()
        if line.strip()
    ]
    table = np.asarray(rows, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 26:
        raise ValueError(f"{path.name}: expected 26 columns, found shape {table.shape}")
    return table


def load_units(path: Path) -> list[Unit]:
    """Units of a train_ or test_ file, in unit order, each sorted by cycle."""
    table = parse_rows(path)
    units = []
    for unit in np.unique(table[:, 0]):
        rows = table[table[:, 0] == unit]
        rows = rows[np.argsort(rows[:, 1])]
        units.append(Unit(int(unit), rows[:, 1], rows[:, 2:5], rows[:, 5:26]))
    return units


def load_truth(path: Path) -> NDArray[np.float64]:
    values = [float(v) for v in _SPLIT.split(path.read_text(encoding="ascii").strip())]
    return np.asarray(values, dtype=np.float64)


def training_target(length: int, cap: float = RUL_CAP) -> NDArray[np.float64]:
    """Remaining cycles at each cycle of a run to failure, capped at ``cap``."""
    return np.minimum(np.arange(length - 1, -1, -1, dtype=np.float64), cap)


def phm08_score(predicted: NDArray[np.float64], truth: NDArray[np.float64]) -> float:
    """PHM08 asymmetric score: late predictions (d > 0) cost more than early ones."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(predicted: NDArray[np.float64], truth: NDArray[np.float64]) -> float:
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))
