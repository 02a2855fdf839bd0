"""Process capability: Cp, Cpk (within-subgroup sigma) and Pp, Ppk (overall sigma), with
confidence intervals and a normality check.

Cp = (USL - LSL) / 6 sigma_within, Cpk = min(USL - mu, mu - LSL) / 3 sigma_within,
Pp and Ppk the same with the overall sample standard deviation (Montgomery, sec. 8.2).
Confidence intervals: Cp (and Pp) from the chi-square distribution of the sample
variance, Cp sqrt(chi2_{a/2, n-1} / (n-1)) .. Cp sqrt(chi2_{1-a/2, n-1} / (n-1));
Cpk (and Ppk) by Bissell's normal approximation, Cpk (1 -+ z_{a/2} sqrt(1/(9 n Cpk^2) +
1/(2(n-1)))) (Bissell 1990). Normality: D'Agostino-Pearson (n >= 20) or Shapiro-Wilk;
indices of a clearly non-normal process mislead, so the verdict travels with them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats  # type: ignore[import-untyped]

from services.quality.domain.control_charts import RANGE_CONSTANTS
from services.runtime.errors import Violations


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Capability:
    mean: float
    sigma_within: float
    sigma_overall: float
    cp: Interval
    cpk: Interval
    pp: Interval
    ppk: Interval
    normality_p_value: float
    normal: bool  # True when normality is not rejected at 5 %
    count: int


def validate_specification(
    lsl: float, usl: float, confidence: float, violations: Violations
) -> None:
    finite = violations.check(
        math.isfinite(lsl), "lower_spec_limit", "must be finite"
    ) & violations.check(math.isfinite(usl), "upper_spec_limit", "must be finite")
    if finite:
        violations.check(usl > lsl, "upper_spec_limit", "must be greater than lower_spec_limit")
    violations.check(0 < confidence < 1, "confidence", "must be between 0 and 1 (e.g. 0.95)")


def within_sigma(subgroups: Sequence[Sequence[float]]) -> float:
    """R-bar / d2 for subgroups of 2..25, or MR-bar / d2 for individual values."""
    size = len(subgroups[0])
    if size >= 2:
        r_bar = math.fsum(max(s) - min(s) for s in subgroups) / len(subgroups)
        return r_bar / RANGE_CONSTANTS[size][0]
    values = [s[0] for s in subgroups]
    moving = [abs(b - a) for a, b in itertools.pairwise(values)]
    return math.fsum(moving) / len(moving) / RANGE_CONSTANTS[2][0]


def _index_interval(value: float, n: int, alpha: float) -> Interval:
    low = value * math.sqrt(stats.chi2.ppf(alpha / 2, n - 1) / (n - 1))
    high = value * math.sqrt(stats.chi2.ppf(1 - alpha / 2, n - 1) / (n - 1))
    return Interval(value, float(low), float(high))


def _k_interval(value: float, n: int, alpha: float) -> Interval:
    z = float(stats.norm.ppf(1 - alpha / 2))
    spread = math.sqrt(1 / (9 * n * value * value) + 1 / (2 * (n - 1))) if value else math.inf
    return Interval(value, value * (1 - z * spread), value * (1 + z * spread))


def capability(
    subgroups: Sequence[Sequence[float]], lsl: float, usl: float, *, confidence: float = 0.95
) -> Capability:
    values = [v for s in subgroups for v in s]
    n = len(values)
    mean = math.fsum(values) / n
    overall = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    within = within_sigma(subgroups)
    alpha = 1 - confidence

    def indices(sigma: float) -> tuple[float, float]:
        if sigma <= 0:
            return math.inf, math.inf
        return (usl - lsl) / (6 * sigma), min(usl - mean, mean - lsl) / (3 * sigma)

    cp, cpk = indices(within)
    pp, ppk = indices(overall)
    normality = (
        float(stats.normaltest(values).pvalue) if n >= 20 else float(stats.shapiro(values).pvalue)
    )
    return Capability(
        mean=mean,
        sigma_within=within,
        sigma_overall=overall,
        cp=_index_interval(cp, n, alpha),
        cpk=_k_interval(cpk, n, alpha),
        pp=_index_interval(pp, n, alpha),
        ppk=_k_interval(ppk, n, alpha),
        normality_p_value=normality,
        normal=normality >= 0.05,
        count=n,
    )
