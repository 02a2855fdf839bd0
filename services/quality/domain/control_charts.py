"""Shewhart control charts for variables.

X-bar/R limits use the usual constants A2 = 3 / (d2 sqrt(n)), D3 = max(0, 1 - 3 d3 / d2)
and D4 = 1 + 3 d3 / d2, from the tabulated mean (d2) and standard deviation (d3) of the
range of n standard normal values (ASTM E2587, Montgomery's Table VI).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.runtime.errors import Violations

# n: (d2, d3) for subgroup sizes 2..25.
RANGE_CONSTANTS: dict[int, tuple[float, float]] = {
    2: (1.128, 0.853), 3: (1.693, 0.888), 4: (2.059, 0.880), 5: (2.326, 0.864),
    6: (2.534, 0.848), 7: (2.704, 0.833), 8: (2.847, 0.820), 9: (2.970, 0.808),
    10: (3.078, 0.797), 11: (3.173, 0.787), 12: (3.258, 0.778), 13: (3.336, 0.770),
    14: (3.407, 0.763), 15: (3.472, 0.756), 16: (3.532, 0.750), 17: (3.588, 0.744),
    18: (3.640, 0.739), 19: (3.689, 0.733), 20: (3.735, 0.729), 21: (3.778, 0.724),
    22: (3.819, 0.720), 23: (3.858, 0.716), 24: (3.895, 0.712), 25: (3.931, 0.708),
}  # fmt: skip
MIN_SUBGROUPS = 2
MAX_SUBGROUPS = 10_000


@dataclass(frozen=True)
class Limits:
    center_line: float
    upper: float
    lower: float

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper


@dataclass(frozen=True)
class Series:
    statistic: str
    limits: Limits
    values: tuple[float, ...]


@dataclass(frozen=True)
class XbarRChart:
    subgroup_size: int
    xbar: Series
    range: Series


def xbar_r_constants(n: int) -> tuple[float, float, float]:
    """(A2, D3, D4) for subgroups of ``n`` values."""
    d2, d3 = RANGE_CONSTANTS[n]
    return 3 / (d2 * math.sqrt(n)), max(0.0, 1 - 3 * d3 / d2), 1 + 3 * d3 / d2


def validate_subgroups(subgroups: Sequence[Sequence[float]], violations: Violations) -> None:
    count = len(subgroups)
    if not violations.check(
        MIN_SUBGROUPS <= count <= MAX_SUBGROUPS,
        "subgroups",
        f"between {MIN_SUBGROUPS} and {MAX_SUBGROUPS} subgroups are needed, got {count}",
    ):
        return
    size = len(subgroups[0])
    for index, values in enumerate(subgroups):
        field = f"subgroups[{index}].values"
        if not violations.check(
            len(values) in RANGE_CONSTANTS, field, "a subgroup holds 2 to 25 values"
        ):
            continue
        violations.check(
            len(values) == size,
            field,
            f"every subgroup must have the same size; subgroups[0] has {size}, this {len(values)}",
        )
        violations.check(all(math.isfinite(v) for v in values), field, "values must be finite")


def xbar_r_chart(subgroups: Sequence[Sequence[float]]) -> XbarRChart:
    """Trial X-bar and R limits from validated subgroups of equal size."""
    n = len(subgroups[0])
    a2, d3, d4 = xbar_r_constants(n)
    means = tuple(math.fsum(values) / n for values in subgroups)
    ranges = tuple(max(values) - min(values) for values in subgroups)
    grand_mean = math.fsum(means) / len(means)
    mean_range = math.fsum(ranges) / len(ranges)
    return XbarRChart(
        subgroup_size=n,
        xbar=Series(
            "xbar",
            Limits(grand_mean, grand_mean + a2 * mean_range, grand_mean - a2 * mean_range),
            means,
        ),
        range=Series("range", Limits(mean_range, d4 * mean_range, d3 * mean_range), ranges),
    )
