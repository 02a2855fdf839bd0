"""Domain objects <-> protobuf messages for the quality service."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2
from manufacturing.quality.v1 import control_chart_pb2, inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb
from numpy.typing import NDArray

from services.quality.domain.inspection.inspector import Inspection, Verdict
from services.quality.domain.spc.capability import Capability, Interval
from services.quality.domain.spc.charts import Chart, Frozen, Series
from services.quality.domain.spc.rules import RuleViolation
from services.quality.domain.spc.study import ATTRIBUTES, ChartStudy
from services.quality.persistence import StoredSubgroup
from services.quality.registry import VersionInfo
from services.runtime.errors import InvalidArgument, ServiceError

VERDICTS = {
    Verdict.GOOD: inspection_pb2.VERDICT_GOOD,
    Verdict.DEFECTIVE: inspection_pb2.VERDICT_DEFECTIVE,
}
KINDS = {
    "classifier": inspection_pb2.MODEL_KIND_CLASSIFIER,
    "anomaly": inspection_pb2.MODEL_KIND_ANOMALY,
}


def inspection_to_proto(
    inspection: Inspection, *, latency_s: float, width: int, height: int
) -> inspection_pb2.InspectionResult:
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int(latency_s * 1e9))
    ranked = sorted(inspection.probabilities.items(), key=lambda item: -item[1])
    return inspection_pb2.InspectionResult(
        verdict=VERDICTS[inspection.verdict],
        defect_class=inspection.defect_class,
        probabilities=[
            inspection_pb2.ClassProbability(label=label, probability=p) for label, p in ranked
        ],
        regions=[
            inspection_pb2.BoundingBox(
                x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max, score=b.score
            )
            for b in inspection.boxes
        ],
        anomaly_score=inspection.anomaly_score,
        anomaly_threshold=inspection.threshold,
        model_name=inspection.model_name,
        model_version=inspection.model_version,
        latency=latency,
        width=width,
        height=height,
        mask=b"" if inspection.mask is None else mask_png(inspection.mask),
    )


def mask_png(mask: NDArray[np.uint8]) -> bytes:
    """A defect mask as a single-channel 8-bit PNG (OpenCV's default, fastest
    compression: a mostly empty mask is small whatever the level)."""
    ok, encoded = cv2.imencode(".png", mask)
    if not ok:
        raise ValueError(f"could not encode a {mask.shape} defect mask as PNG")
    return encoded.tobytes()


def error_to_proto(error: ServiceError, code: int) -> inspection_pb2.InspectionError:
    fields = error.violations if isinstance(error, InvalidArgument) else []
    return inspection_pb2.InspectionError(
        code=code,
        message=str(error),
        field_errors=[
            inspection_pb2.FieldError(field=v.field, description=v.description) for v in fields
        ],
    )


def version_to_proto(info: VersionInfo) -> inspection_pb2.ModelVersion:
    manifest = info.manifest
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(datetime.fromisoformat(manifest.created))
    metrics = {
        key: float(value)
        for key, value in manifest.metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return inspection_pb2.ModelVersion(
        name=manifest.name,
        version=manifest.version,
        kind=KINDS.get(manifest.kind, inspection_pb2.MODEL_KIND_UNSPECIFIED),
        active=info.active,
        create_time=created,
        classes=list(manifest.classes),
        data_fingerprint=manifest.data_fingerprint,
        sha256=next(iter(manifest.files.values()), ""),
        metrics=metrics,
    )


CHART_TYPES = {
    control_chart_pb2.CHART_TYPE_XBAR_R: "xbar_r",
    control_chart_pb2.CHART_TYPE_XBAR_S: "xbar_s",
    control_chart_pb2.CHART_TYPE_I_MR: "i_mr",
    control_chart_pb2.CHART_TYPE_P: "p",
    control_chart_pb2.CHART_TYPE_NP: "np",
    control_chart_pb2.CHART_TYPE_C: "c",
    control_chart_pb2.CHART_TYPE_U: "u",
    control_chart_pb2.CHART_TYPE_EWMA: "ewma",
    control_chart_pb2.CHART_TYPE_CUSUM: "cusum",
}
RULE_SETS = {
    control_chart_pb2.RULE_SET_WESTERN_ELECTRIC: "western_electric",
    control_chart_pb2.RULE_SET_NELSON: "nelson",
}


def study_from_proto(request: pb.ComputeControlChartRequest, chart_type: str) -> ChartStudy:
    subgroups = list(request.subgroups)
    attributes = chart_type in ATTRIBUTES
    return ChartStudy(
        chart_type=chart_type,
        values=[[] if attributes else list(s.values) for s in subgroups],
        counts=[s.count for s in subgroups] if attributes else [],
        sizes=[s.size for s in subgroups] if attributes else [],
        excluded=list(request.excluded_subgroups),
        auto_exclude=request.auto_exclude,
        frozen=(
            Frozen(request.frozen_limits.center, request.frozen_limits.sigma)
            if request.HasField("frozen_limits")
            else None
        ),
        rule_set=RULE_SETS.get(request.rules, ""),
        ewma_lambda=request.ewma_lambda or 0.2,
        ewma_width=request.ewma_width or 3.0,
        cusum_k=request.cusum_k or 0.5,
        cusum_h=request.cusum_h or 5.0,
    )


def _finite(value: float) -> float:
    # One-sided CUSUM limits are infinite on the other side; proto readers get 0 there.
    return value if value not in (float("inf"), float("-inf")) else 0.0


def series_to_proto(series: Series) -> control_chart_pb2.ChartSeries:
    outside = set(series.out_of_control())
    return control_chart_pb2.ChartSeries(
        statistic=series.statistic,
        limits=control_chart_pb2.ControlLimits(
            center_line=series.center_line,
            upper_control_limit=_finite(series.upper[0]),
            lower_control_limit=_finite(series.lower[0]),
        ),
        points=[
            control_chart_pb2.ChartPoint(
                subgroup_index=index,
                value=value,
                out_of_control=index in outside,
                upper_control_limit=_finite(upper),
                lower_control_limit=_finite(lower),
            )
            for index, (value, upper, lower) in enumerate(
                zip(series.values, series.upper, series.lower, strict=True)
            )
        ],
    )


def chart_to_proto(
    chart: Chart, found: list[RuleViolation], chart_type: int, subgroup_size: int
) -> control_chart_pb2.ControlChart:
    statistic = chart.series[0].statistic
    return control_chart_pb2.ControlChart(
        chart_type=chart_type,  # type: ignore[arg-type]
        subgroup_size=subgroup_size,
        series=[series_to_proto(s) for s in chart.series],
        excluded_subgroups=list(chart.excluded),
        violations=[
            control_chart_pb2.RuleViolation(
                rule=v.rule,
                description=v.description,
                statistic=statistic,
                points=list(v.points),
                at=v.at,
            )
            for v in found
        ],
        process_center=chart.process_mean,
        process_sigma=chart.process_sigma,
    )


def _interval(interval: Interval) -> control_chart_pb2.IndexEstimate:
    return control_chart_pb2.IndexEstimate(
        estimate=_finite(interval.estimate),
        lower=_finite(interval.lower),
        upper=_finite(interval.upper),
    )


def capability_to_proto(result: Capability) -> control_chart_pb2.Capability:
    return control_chart_pb2.Capability(
        cp=_interval(result.cp),
        cpk=_interval(result.cpk),
        pp=_interval(result.pp),
        ppk=_interval(result.ppk),
        mean=result.mean,
        sigma_within=result.sigma_within,
        sigma_overall=result.sigma_overall,
        normality_p_value=result.normality_p_value,
        normal=result.normal,
        count=result.count,
    )


def subgroup_from_proto(subgroup: control_chart_pb2.Subgroup) -> StoredSubgroup:
    return StoredSubgroup(
        sequence=0,
        values=tuple(subgroup.values),
        count=subgroup.count,
        size=subgroup.size,
        taken_at=subgroup.time.ToDatetime(tzinfo=UTC) if subgroup.HasField("time") else None,
    )


def stored_to_proto(stored: StoredSubgroup) -> control_chart_pb2.Subgroup:
    subgroup = control_chart_pb2.Subgroup(
        values=list(stored.values), count=stored.count, size=stored.size
    )
    if stored.taken_at is not None:
        subgroup.time.FromDatetime(stored.taken_at)
    return subgroup
