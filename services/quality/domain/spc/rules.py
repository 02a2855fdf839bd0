"""Run rules: Western Electric (WECO) and Nelson, with the points that broke each.

Zones are measured in the sigma of each point's statistic around the centre line
(zone C: within 1 sigma, B: 1-2, A: 2-3). Rules follow the Western Electric Statistical
Quality Control Handbook (1956) and L. S. Nelson, "The Shewhart control chart - tests
for special causes", J. Quality Technology 16(4), 1984. A violation lists every point
of the run that triggered it (the window ending at the point where it completed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleViolation:
    rule: str  # e.g. "nelson_2"
    description: str
    points: tuple[int, ...]  # indices of the points forming the pattern
    at: int  # index where the pattern completed


def _z(values: Sequence[float], center: float, sigma: Sequence[float]) -> list[float]:
    return [(v - center) / s if s > 0 else 0.0 for v, s in zip(values, sigma, strict=True)]


def _windows(
    z: list[float],
    length: int,
    needed: int,
    test: Callable[[float], bool],
    rule: str,
    description: str,
) -> list[RuleViolation]:
    found = []
    for end in range(length - 1, len(z)):
        window = range(end - length + 1, end + 1)
        hits = [i for i in window if test(z[i])]
        if len(hits) >= needed:
            found.append(RuleViolation(rule, description, tuple(hits), end))
    return _merge(found)


def _merge(violations: list[RuleViolation]) -> list[RuleViolation]:
    """Consecutive windows of one ongoing pattern become one violation."""
    merged: list[RuleViolation] = []
    for v in violations:
        if merged and merged[-1].at == v.at - 1 and set(merged[-1].points) & set(v.points):
            previous = merged[-1]
            points = tuple(sorted(set(previous.points) | set(v.points)))
            merged[-1] = RuleViolation(v.rule, v.description, points, previous.at)
        else:
            merged.append(v)
    return merged


def _same_side(z: list[float], run: int, rule: str, description: str) -> list[RuleViolation]:
    return _windows(z, run, run, lambda x: x > 0, rule, description) + _windows(
        z, run, run, lambda x: x < 0, rule, description
    )


def _trend(values: Sequence[float], run: int, rule: str, description: str) -> list[RuleViolation]:
    found: list[RuleViolation] = []
    for direction in (1, -1):
        start = 0
        for i in range(1, len(values) + 1):
            steady = i < len(values) and direction * (values[i] - values[i - 1]) > 0
            if not steady:
                if i - start >= run:
                    found.append(
                        RuleViolation(rule, description, tuple(range(start, i)), start + run - 1)
                    )
                start = i
    return found


def _alternating(
    values: Sequence[float], run: int, rule: str, description: str
) -> list[RuleViolation]:
    found = []
    start = 0
    for i in range(2, len(values) + 1):
        flips = (
            i < len(values) and (values[i] - values[i - 1]) * (values[i - 1] - values[i - 2]) < 0
        )
        if not flips:
            if i - start >= run:
                found.append(
                    RuleViolation(rule, description, tuple(range(start, i)), start + run - 1)
                )
            start = i - 1
    return found


def western_electric(
    values: Sequence[float], center: float, sigma: Sequence[float]
) -> list[RuleViolation]:
    z = _z(values, center, sigma)
    rules = (
        _windows(z, 1, 1, lambda x: abs(x) > 3, "we_1", "one point beyond 3 sigma")
        + _windows(z, 3, 2, lambda x: x > 2, "we_2", "2 of 3 beyond 2 sigma, same side")
        + _windows(z, 3, 2, lambda x: x < -2, "we_2", "2 of 3 beyond 2 sigma, same side")
        + _windows(z, 5, 4, lambda x: x > 1, "we_3", "4 of 5 beyond 1 sigma, same side")
        + _windows(z, 5, 4, lambda x: x < -1, "we_3", "4 of 5 beyond 1 sigma, same side")
        + _same_side(z, 8, "we_4", "8 in a row on one side of the centre line")
    )
    return sorted(rules, key=lambda v: (v.at, v.rule))


def nelson(values: Sequence[float], center: float, sigma: Sequence[float]) -> list[RuleViolation]:
    z = _z(values, center, sigma)
    rules = (
        _windows(z, 1, 1, lambda x: abs(x) > 3, "nelson_1", "one point beyond 3 sigma")
        + _same_side(z, 9, "nelson_2", "9 in a row on one side of the centre line")
        + _trend(values, 6, "nelson_3", "6 in a row steadily increasing or decreasing")
        + _alternating(values, 14, "nelson_4", "14 in a row alternating up and down")
        + _windows(z, 3, 2, lambda x: x > 2, "nelson_5", "2 of 3 beyond 2 sigma, same side")
        + _windows(z, 3, 2, lambda x: x < -2, "nelson_5", "2 of 3 beyond 2 sigma, same side")
        + _windows(z, 5, 4, lambda x: x > 1, "nelson_6", "4 of 5 beyond 1 sigma, same side")
        + _windows(z, 5, 4, lambda x: x < -1, "nelson_6", "4 of 5 beyond 1 sigma, same side")
        + _windows(z, 15, 15, lambda x: abs(x) < 1, "nelson_7", "15 in a row within 1 sigma")
        + _windows(
            z, 8, 8, lambda x: abs(x) > 1, "nelson_8", "8 in a row beyond 1 sigma, both sides"
        )
    )
    if any(s <= 0 for s in sigma):  # no zones without a sigma: only the trend rules apply
        rules = [r for r in rules if r.rule in ("nelson_3", "nelson_4")]
    return sorted(rules, key=lambda v: (v.at, v.rule))
