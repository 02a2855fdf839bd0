"""Pictures of replies, drawn by the services' own drawing code: a Gantt chart of a
schedule, a control chart, an inspection overlay.

Imported only by the commands that write pictures: the drawing code pulls in OpenCV
and the models' libraries, which would slow every other command's start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np
from manufacturing.quality.v1 import control_chart_pb2, inspection_pb2
from manufacturing.scheduling.v1 import schedule_pb2
from numpy.typing import NDArray

from services.quality.domain.inspection.images import DEFAULT_MAX_PIXELS, decode_gray
from services.quality.domain.inspection.inspector import Inspection, Verdict
from services.quality.domain.inspection.regions import Box
from services.quality.domain.pictures import control_chart_image, inspection_overlay
from services.quality.domain.spc.charts import Series
from services.scheduling.gantt import chart_from_schedule_message, render_png, render_svg

# Charts whose limits are 3 sigma of the plotted statistic: their zones A/B/C can be
# drawn from the limits alone. EWMA and CUSUM limits are other multiples.
SHEWHART = frozenset(
    {
        control_chart_pb2.CHART_TYPE_XBAR_R,
        control_chart_pb2.CHART_TYPE_XBAR_S,
        control_chart_pb2.CHART_TYPE_I_MR,
        control_chart_pb2.CHART_TYPE_P,
        control_chart_pb2.CHART_TYPE_NP,
        control_chart_pb2.CHART_TYPE_C,
        control_chart_pb2.CHART_TYPE_U,
    }
)


def write_gantt(schedule: schedule_pb2.Schedule, path: Path) -> None:
    """A Gantt chart, PNG or SVG after the file's extension."""
    chart = chart_from_schedule_message(schedule)
    if path.suffix.lower() == ".svg":
        path.write_text(render_svg(chart), encoding="utf-8")
    else:
        path.write_bytes(render_png(chart))


def _series(message: control_chart_pb2.ChartSeries, zones: bool) -> Series:
    center = message.limits.center_line
    upper = tuple(p.upper_control_limit for p in message.points)
    return Series(
        statistic=message.statistic,
        center_line=center,
        values=tuple(p.value for p in message.points),
        upper=upper,
        lower=tuple(p.lower_control_limit for p in message.points),
        sigma=tuple((u - center) / 3 if zones else 0.0 for u in upper),
    )


def write_control_chart(chart: control_chart_pb2.ControlChart, path: Path) -> None:
    """One panel per statistic; points beyond the limits and, on the first statistic,
    the points of every run-rule violation circled."""
    kind = control_chart_pb2.ChartType.Name(chart.chart_type).removeprefix("CHART_TYPE_").lower()
    rules = sorted({v.rule for v in chart.violations})
    panels = []
    for index, message in enumerate(chart.series):
        flagged = {p.subgroup_index for p in message.points if p.out_of_control}
        title = f"{kind} - {message.statistic}"
        if index == 0:
            flagged |= {point for v in chart.violations for point in v.points}
            title += f"  ({', '.join(rules)})" if rules else ""
        series = _series(message, chart.chart_type in SHEWHART)
        panels.append(control_chart_image(series, sorted(flagged), title=title))
    _write_png(np.vstack(panels), path)


def write_overlay(image: bytes, result: inspection_pb2.InspectionResult, path: Path) -> None:
    """The inspected part with the regions the service found boxed on it and, from an
    anomaly model, the pixels it judged defective tinted."""
    pixels = decode_gray(image, "image", max_pixels=DEFAULT_MAX_PIXELS)
    inspection = Inspection(
        verdict=Verdict.DEFECTIVE
        if result.verdict == inspection_pb2.VERDICT_DEFECTIVE
        else Verdict.GOOD,
        defect_class=result.defect_class,
        probabilities={p.label: p.probability for p in result.probabilities},
        anomaly_score=result.anomaly_score,
        threshold=result.anomaly_threshold,
        boxes=[Box(b.x_min, b.y_min, b.x_max, b.y_max, b.score) for b in result.regions],
        model_name=result.model_name,
        model_version=result.model_version,
        latency_s=result.latency.ToNanoseconds() / 1e9,
        mask=_mask(result.mask, pixels.shape) if result.mask else None,
    )
    _write_png(inspection_overlay(pixels, inspection), path)


def _mask(png: bytes, shape: tuple[int, ...]) -> NDArray[np.uint8]:
    mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.shape != shape:
        raise click.ClickException("the service's defect mask is not a PNG of the image's size")
    return np.asarray(mask, np.uint8)  # IMREAD_GRAYSCALE gives 8 bits; mypy cannot tell


def _write_png(image: NDArray[Any], path: Path) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise click.ClickException(f"could not encode {path} as PNG")
    path.write_bytes(encoded.tobytes())
