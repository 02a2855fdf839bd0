"""One control-chart study: validate the request, pick the chart, apply Phase I/II and
the run rules. Field paths in errors follow the contract (``subgroups[3].values``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from services.quality.domain.control_charts import RANGE_CONSTANTS
from services.quality.domain.spc import charts, rules
from services.quality.domain.spc.charts import Chart, Frozen
from services.quality.domain.spc.rules import RuleViolation
from services.runtime.errors import Violations

MIN_SUBGROUPS = 2
MAX_SUBGROUPS = 10_000
VARIABLES = ("xbar_r", "xbar_s")
SINGLE_SERIES = ("i_mr", "ewma", "cusum")
ATTRIBUTES = ("p", "np", "c", "u")


@dataclass(frozen=True)
class ChartStudy:
    chart_type: str  # xbar_r | xbar_s | i_mr | p | np | c | u | ewma | cusum
    values: list[list[float]]
    counts: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    auto_exclude: bool = False
    frozen: Frozen | None = None
    rule_set: str = ""  # "" | "western_electric" | "nelson"
    ewma_lambda: float = 0.2
    ewma_width: float = 3.0
    cusum_k: float = 0.5
    cusum_h: float = 5.0


def validate(study: ChartStudy, violations: Violations) -> None:
    count = len(study.values)
    if not violations.check(
        MIN_SUBGROUPS <= count <= MAX_SUBGROUPS,
        "subgroups",
        f"between {MIN_SUBGROUPS} and {MAX_SUBGROUPS} subgroups are needed, got {count}",
    ):
        return
    kind = study.chart_type
    if kind in ATTRIBUTES:
        _validate_attributes(study, violations)
    else:
        first = len(study.values[0])
        for index, values in enumerate(study.values):
            path = f"subgroups[{index}].values"
            if not violations.check(bool(values), path, "a subgroup needs at least one value"):
                continue
            if kind in VARIABLES:
                violations.check(
                    len(values) in RANGE_CONSTANTS, path, "a subgroup holds 2 to 25 values"
                )
            elif kind == "i_mr":
                violations.check(
                    len(values) == 1, path, "an I-MR chart takes one value per subgroup"
                )
            else:
                violations.check(len(values) <= 25, path, "a subgroup holds 1 to 25 values")
            violations.check(
                len(values) == first,
                path,
                f"every subgroup must have the same size; subgroups[0] has {first}, "
                f"this {len(values)}",
            )
            violations.check(all(math.isfinite(v) for v in values), path, "values must be finite")
    for position, index in enumerate(study.excluded):
        violations.check(
            0 <= index < count, f"excluded_subgroups[{position}]", f"no subgroup {index}"
        )
    if study.frozen is not None:
        frozen = study.frozen
        violations.check(math.isfinite(frozen.center), "frozen_limits.center", "must be finite")
        if kind in ATTRIBUTES:
            upper = 1.0 if kind in ("p", "np") else math.inf
            violations.check(
                0 < frozen.center < upper, "frozen_limits.center", "must be a fraction / rate > 0"
            )
        else:
            violations.check(
                math.isfinite(frozen.sigma) and frozen.sigma > 0,
                "frozen_limits.sigma",
                "must be a positive standard deviation",
            )
    if kind == "ewma":
        violations.check(0 < study.ewma_lambda <= 1, "ewma_lambda", "must be in (0, 1]")
        violations.check(0 < study.ewma_width <= 10, "ewma_width", "must be in (0, 10]")
    if kind == "cusum":
        violations.check(0 <= study.cusum_k <= 5, "cusum_k", "must be in [0, 5]")
        violations.check(0 < study.cusum_h <= 50, "cusum_h", "must be in (0, 50]")


def _validate_attributes(study: ChartStudy, violations: Violations) -> None:
    kind = study.chart_type
    for index, (count, size) in enumerate(zip(study.counts, study.sizes, strict=True)):
        path = f"subgroups[{index}]"
        violations.check(
            math.isfinite(count) and count >= 0, f"{path}.count", "must be a finite count >= 0"
        )
        if kind == "c":
            continue
        if not violations.check(
            math.isfinite(size) and size > 0, f"{path}.size", "must be a finite size > 0"
        ):
            continue
        if kind in ("p", "np"):
            violations.check(count <= size, f"{path}.count", "cannot exceed the sample size")
        if kind == "np":
            violations.check(
                size == study.sizes[0], f"{path}.size", "an np chart needs one sample size"
            )


def _means(values: list[list[float]]) -> list[float]:
    return [math.fsum(v) / len(v) for v in values]


def _estimate_target(study: ChartStudy, keep: list[int]) -> Frozen:
    """Phase I centre and sigma of the plotted statistic for EWMA and CUSUM."""
    means = _means(study.values)
    size = len(study.values[0])
    centre = math.fsum(means[i] for i in keep) / len(keep)
    if size >= 2:
        r_bar = math.fsum(max(study.values[i]) - min(study.values[i]) for i in keep) / len(keep)
        return Frozen(centre, r_bar / RANGE_CONSTANTS[size][0] / math.sqrt(size))
    moving = [abs(means[i] - means[i - 1]) for i in range(1, len(means))]
    return Frozen(centre, math.fsum(moving) / len(moving) / RANGE_CONSTANTS[2][0])


def _build(study: ChartStudy, keep: list[int]) -> Chart:
    kind, frozen = study.chart_type, study.frozen
    if kind == "xbar_r":
        return charts.xbar_r(study.values, keep, frozen)
    if kind == "xbar_s":
        return charts.xbar_s(study.values, keep, frozen)
    if kind == "i_mr":
        return charts.individuals_mr([v[0] for v in study.values], keep, frozen)
    if kind in ("p", "np"):
        sizes = [round(s) for s in study.sizes]
        return charts.p_chart(study.counts, sizes, keep, frozen, count_chart=kind == "np")
    if kind in ("c", "u"):
        units = study.sizes if kind == "u" else [1.0] * len(study.counts)
        return charts.c_u_chart(study.counts, units, keep, frozen, per_unit=kind == "u")
    size = len(study.values[0])
    if frozen is not None:  # frozen sigma is of individual values
        target = Frozen(frozen.center, frozen.sigma / math.sqrt(size))
    else:
        target = _estimate_target(study, keep)
    means = _means(study.values)
    if kind == "ewma":
        return charts.ewma(
            means, target.center, target.sigma, lam=study.ewma_lambda, width=study.ewma_width
        )
    return charts.cusum(means, target.center, target.sigma, k=study.cusum_k, h=study.cusum_h)


def compute(study: ChartStudy) -> tuple[Chart, list[RuleViolation]]:
    """The chart (Phase I or II) and the run-rule violations of its first series."""
    count = len(study.values) if study.chart_type not in ATTRIBUTES else len(study.counts)
    build = partial(_build, study)
    if study.frozen is None and study.chart_type not in ("ewma", "cusum"):
        chart = charts.phase_one(build, count, study.excluded, auto_exclude=study.auto_exclude)
    elif study.frozen is None:  # EWMA/CUSUM estimate their target in Phase I
        chart = charts.phase_one(build, count, study.excluded, auto_exclude=False)
    else:
        chart = build(list(range(count)))
    series = chart.series[0]
    found: list[RuleViolation] = []
    if study.rule_set == "western_electric":
        found = rules.western_electric(series.values, series.center_line, series.sigma)
    elif study.rule_set == "nelson":
        found = rules.nelson(series.values, series.center_line, series.sigma)
    return chart, found


class RecordedSubgroup(Protocol):
    @property
    def values(self) -> tuple[float, ...]: ...
    @property
    def count(self) -> float: ...
    @property
    def size(self) -> float: ...


def validate_recorded(subgroups: Sequence[RecordedSubgroup], violations: Violations) -> None:
    """Measurements to store: values (1..25, finite) or an attribute count (and size)."""
    for index, subgroup in enumerate(subgroups):
        path = f"subgroups[{index}]"
        values = subgroup.values
        if values:
            violations.check(len(values) <= 25, f"{path}.values", "at most 25 values")
            violations.check(
                all(math.isfinite(v) for v in values), f"{path}.values", "values must be finite"
            )
            continue
        has_count = subgroup.count != 0 or subgroup.size != 0
        if not violations.check(
            has_count, f"{path}.values", "a subgroup needs values, or a count and size"
        ):
            continue
        violations.check(
            math.isfinite(subgroup.count) and subgroup.count >= 0,
            f"{path}.count",
            "must be a finite count >= 0",
        )
        violations.check(
            math.isfinite(subgroup.size) and subgroup.size >= 0,
            f"{path}.size",
            "must be a finite size >= 0",
        )
