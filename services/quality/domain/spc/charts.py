"""Control charts for variables (X-bar/R, X-bar/S, I-MR), attributes (p, np, c, u) and
small shifts (EWMA, tabular CUSUM), in Phase I and Phase II.

Phase I (trial limits): limits from the data; subgroups the caller marks as having an
assignable cause are left out of the limit calculation and the limits recomputed
(Montgomery, Introduction to Statistical Quality Control, 6th ed., sec. 6.2 and 7.2).
With ``auto_exclude`` points beyond the limits are removed repeatedly until none
remain. Phase II: the frozen centre line and sigma given by the caller are used as they
are and each point is judged against them.

Constants: d2, d3 from ``control_charts.RANGE_CONSTANTS``; c4 = sqrt(2/(n-1)) Gamma(n/2)
/ Gamma((n-1)/2). Every chart reports, per point, its own limits (attribute charts with
varying sample size and EWMA have limits that vary by point) and its sigma, which the
run rules use for their zones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.quality.domain.control_charts import RANGE_CONSTANTS
from services.runtime.errors import Violations

MAX_EXCLUSION_ROUNDS = 20


@dataclass(frozen=True)
class Series:
    """One plotted statistic with per-point limits (3 sigma unless stated)."""

    statistic: str
    center_line: float
    values: tuple[float, ...]
    upper: tuple[float, ...]
    lower: tuple[float, ...]
    sigma: tuple[float, ...]  # standard deviation of each point's statistic

    def out_of_control(self) -> list[int]:
        return [
            i
            for i, (v, u, lo) in enumerate(zip(self.values, self.upper, self.lower, strict=True))
            if v > u or v < lo
        ]


@dataclass(frozen=True)
class Chart:
    chart_type: str
    series: tuple[Series, ...]
    excluded: tuple[int, ...]  # subgroups left out of the limits (Phase I)
    process_mean: float  # the centre the limits came from (or were given)
    process_sigma: float  # sigma of individual values (variables charts), else 0


def c4(n: int) -> float:
    return math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _stdev(values: Sequence[float]) -> float:
    m = _mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def _const(value: float, count: int) -> tuple[float, ...]:
    return (value,) * count


def _series(
    statistic: str,
    center: float,
    values: Sequence[float],
    sigma: Sequence[float],
    *,
    floor: float | None = 0.0,
) -> Series:
    upper = tuple(center + 3 * s for s in sigma)
    lower = tuple(
        max(floor, center - 3 * s) if floor is not None else center - 3 * s for s in sigma
    )
    return Series(statistic, center, tuple(values), upper, lower, tuple(sigma))


@dataclass(frozen=True)
class Frozen:
    """Phase II: centre and sigma of individual values (variables) or the standard
    fraction / rate (attributes: ``center`` only)."""

    center: float
    sigma: float = 0.0


def xbar_r(
    subgroups: Sequence[Sequence[float]], keep: Sequence[int], frozen: Frozen | None
) -> Chart:
    n = len(subgroups[0])
    d2, d3 = RANGE_CONSTANTS[n]
    means = [_mean(s) for s in subgroups]
    ranges = [max(s) - min(s) for s in subgroups]
    if frozen is None:
        center = _mean([means[i] for i in keep])
        r_bar = _mean([ranges[i] for i in keep])
        sigma = r_bar / d2
    else:
        center, sigma = frozen.center, frozen.sigma
        r_bar = d2 * sigma
    count = len(subgroups)
    xbar = _series("xbar", center, means, _const(sigma / math.sqrt(n), count), floor=None)
    r = _series("range", r_bar, ranges, _const(d3 * sigma, count))
    return Chart("xbar_r", (xbar, r), (), center, sigma)


def xbar_s(
    subgroups: Sequence[Sequence[float]], keep: Sequence[int], frozen: Frozen | None
) -> Chart:
    n = len(subgroups[0])
    c = c4(n)
    means = [_mean(s) for s in subgroups]
    stdevs = [_stdev(s) for s in subgroups]
    if frozen is None:
        center = _mean([means[i] for i in keep])
        s_bar = _mean([stdevs[i] for i in keep])
        sigma = s_bar / c
    else:
        center, sigma = frozen.center, frozen.sigma
        s_bar = c * sigma
    count = len(subgroups)
    xbar = _series("xbar", center, means, _const(sigma / math.sqrt(n), count), floor=None)
    s = _series("stdev", s_bar, stdevs, _const(sigma * math.sqrt(1 - c * c), count))
    return Chart("xbar_s", (xbar, s), (), center, sigma)


def individuals_mr(values: Sequence[float], keep: Sequence[int], frozen: Frozen | None) -> Chart:
    d2, d3 = RANGE_CONSTANTS[2]
    moving = [abs(values[i] - values[i - 1]) for i in range(1, len(values))]
    if frozen is None:
        center = _mean([values[i] for i in keep])
        kept_moving = [moving[i - 1] for i in keep if i >= 1 and i - 1 in keep]
        mr_bar = _mean(kept_moving or moving)
        sigma = mr_bar / d2
    else:
        center, sigma = frozen.center, frozen.sigma
        mr_bar = d2 * sigma
    x = _series("individual", center, values, _const(sigma, len(values)), floor=None)
    mr = _series("moving_range", mr_bar, moving, _const(d3 * sigma, len(moving)))
    return Chart("i_mr", (x, mr), (), center, sigma)


def p_chart(
    defectives: Sequence[float],
    sizes: Sequence[int],
    keep: Sequence[int],
    frozen: Frozen | None,
    *,
    count_chart: bool,
) -> Chart:
    if frozen is None:
        p_bar = math.fsum(defectives[i] for i in keep) / sum(sizes[i] for i in keep)
    else:
        p_bar = frozen.center
    spread = p_bar * (1 - p_bar)
    if count_chart:  # np chart: counts, constant n
        n = sizes[0]
        sigma = _const(math.sqrt(n * spread), len(sizes))
        series = _series("defectives", n * p_bar, defectives, sigma)
        return Chart("np", (series,), (), n * p_bar, 0.0)
    fractions = [d / n for d, n in zip(defectives, sizes, strict=True)]
    sigma = tuple(math.sqrt(spread / n) for n in sizes)
    upper_capped = _series("fraction_defective", p_bar, fractions, sigma)
    upper = tuple(min(1.0, u) for u in upper_capped.upper)
    series = Series(
        upper_capped.statistic, p_bar, upper_capped.values, upper, upper_capped.lower, sigma
    )
    return Chart("p", (series,), (), p_bar, 0.0)


def c_u_chart(
    counts: Sequence[float],
    units: Sequence[float],
    keep: Sequence[int],
    frozen: Frozen | None,
    *,
    per_unit: bool,
) -> Chart:
    if frozen is None:
        rate = math.fsum(counts[i] for i in keep) / math.fsum(units[i] for i in keep)
    else:
        rate = frozen.center
    if not per_unit:  # c chart: counts per inspection unit of constant size
        sigma = _const(math.sqrt(rate), len(counts))
        return Chart("c", (_series("nonconformities", rate, counts, sigma),), (), rate, 0.0)
    values = [c / n for c, n in zip(counts, units, strict=True)]
    sigma = tuple(math.sqrt(rate / n) for n in units)
    return Chart("u", (_series("nonconformities_per_unit", rate, values, sigma),), (), rate, 0.0)


def ewma(
    values: Sequence[float], target: float, sigma: float, *, lam: float, width: float
) -> Chart:
    """EWMA z_i = lam x_i + (1 - lam) z_{i-1}, z_0 = target; exact (time-varying) limits
    target +- L sigma sqrt(lam / (2 - lam) (1 - (1 - lam)^(2i))) (Montgomery sec. 9.2)."""
    z, statistics, sigmas = target, [], []
    for i, x in enumerate(values, start=1):
        z = lam * x + (1 - lam) * z
        statistics.append(z)
        sigmas.append(sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i))))
    upper = tuple(target + width * s for s in sigmas)
    lower = tuple(target - width * s for s in sigmas)
    series = Series("ewma", target, tuple(statistics), upper, lower, tuple(sigmas))
    return Chart("ewma", (series,), (), target, sigma)


def cusum(values: Sequence[float], target: float, sigma: float, *, k: float, h: float) -> Chart:
    """Tabular CUSUM: C+_i = max(0, x_i - (target + K) + C+_{i-1}), C-_i = max(0,
    (target - K) - x_i + C-_{i-1}), K = k sigma, signal when either exceeds H = h sigma
    (Montgomery sec. 9.1). The lower side is reported as -C- so both plot on one axis."""
    big_k, big_h = k * sigma, h * sigma
    upper_sum = lower_sum = 0.0
    highs, lows = [], []
    for x in values:
        upper_sum = max(0.0, x - (target + big_k) + upper_sum)
        lower_sum = max(0.0, (target - big_k) - x + lower_sum)
        highs.append(upper_sum)
        lows.append(-lower_sum)
    count = len(values)
    no_sigma = _const(0.0, count)
    high = Series(
        "cusum_upper", 0.0, tuple(highs), _const(big_h, count), _const(-math.inf, count), no_sigma
    )
    low = Series(
        "cusum_lower", 0.0, tuple(lows), _const(math.inf, count), _const(-big_h, count), no_sigma
    )
    return Chart("cusum", (high, low), (), target, sigma)


def phase_one(
    build: Callable[[Sequence[int]], Chart],
    count: int,
    excluded: Sequence[int],
    *,
    auto_exclude: bool,
) -> Chart:
    """Trial limits without the ``excluded`` subgroups; with ``auto_exclude`` also
    without any subgroup beyond the limits of a per-subgroup series, recomputed until
    none remain (at least two subgroups are always kept)."""
    out = set(excluded)
    chart = build([i for i in range(count) if i not in out])
    for _ in range(MAX_EXCLUSION_ROUNDS):
        new: set[int] = set()
        if auto_exclude:
            for series in chart.series:
                if len(series.values) == count:  # moving ranges are indexed differently
                    new |= set(series.out_of_control()) - out
        if not new or count - len(out | new) < 2:
            break
        out |= new
        chart = build([i for i in range(count) if i not in out])
    return Chart(
        chart.chart_type, chart.series, tuple(sorted(out)), chart.process_mean, chart.process_sigma
    )


def validate_finite(values: Sequence[float], field: str, violations: Violations) -> None:
    violations.check(all(math.isfinite(v) for v in values), field, "values must be finite")
