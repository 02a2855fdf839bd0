"""Pictures for people: a control chart with limits, zones and flagged points, and an
inspection overlay with the defect regions (and pixels) drawn on the part. OpenCV only."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from services.quality.domain.inspection.inspector import Inspection, Verdict
from services.quality.domain.spc.charts import Series

WHITE = (255, 255, 255)
GREY = (150, 150, 150)
BLUE = (180, 90, 30)
RED = (40, 40, 220)
GREEN = (60, 160, 60)
ZONE_FILL = ((235, 245, 235), (215, 240, 250), (210, 215, 250))  # C, B, A (BGR)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MASK_OPACITY = 0.45  # the part's texture stays visible under the defect pixels


def control_chart_image(
    series: Series,
    flagged: Sequence[int],
    *,
    title: str,
    width: int = 1000,
    height: int = 420,
) -> NDArray[Any]:
    """One chart statistic: zones A/B/C shaded (where sigma is known), centre line,
    control limits (stepped where they vary), points, flagged points circled red."""
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, width - 20, 40, height - 40
    values = np.asarray(series.values, dtype=np.float64)
    finite_limits = [v for v in (*series.upper, *series.lower) if np.isfinite(v)]
    low = min(float(values.min()), *finite_limits) if finite_limits else float(values.min())
    high = max(float(values.max()), *finite_limits) if finite_limits else float(values.max())
    pad = (high - low) * 0.08 or 1.0
    low, high = low - pad, high + pad
    count = len(values)

    def x(i: float) -> int:
        return int(left + (right - left) * (i + 0.5) / max(count, 1))

    def y(v: float) -> int:
        return int(bottom - (bottom - top) * (v - low) / (high - low))

    for i in range(count):  # zones, per point (limits may vary)
        sigma = series.sigma[i]
        if sigma <= 0:
            continue
        x0, x1 = x(i - 0.5), x(i + 0.5)
        for zone in (3, 2, 1):
            colour = ZONE_FILL[zone - 1]
            cv2.rectangle(
                image,
                (x0, y(series.center_line + zone * sigma)),
                (x1, y(series.center_line - zone * sigma)),
                colour,
                -1,
            )
    cv2.line(image, (left, y(series.center_line)), (right, y(series.center_line)), GREEN, 1)
    for limits in (series.upper, series.lower):
        previous = None
        for i, value in enumerate(limits):
            if not np.isfinite(value):
                continue
            point = (x(i), y(value))
            if previous is not None:
                cv2.line(image, previous, point, RED, 1)
            previous = point
    points = [(x(i), y(float(v))) for i, v in enumerate(values)]
    for a, b in itertools.pairwise(points):
        cv2.line(image, a, b, BLUE, 1, cv2.LINE_AA)
    marked = set(flagged)
    for i, point in enumerate(points):
        cv2.circle(image, point, 3, BLUE, -1, cv2.LINE_AA)
        if i in marked:
            cv2.circle(image, point, 7, RED, 2, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (right, bottom), GREY, 1)
    for value in (high - pad, series.center_line, low + pad):
        cv2.putText(image, f"{value:.6g}", (4, y(value) + 4), FONT, 0.4, (0, 0, 0), 1)
    cv2.putText(image, title, (left, 25), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    legend = f"CL {series.center_line:.6g}   UCL {series.upper[0]:.6g}   LCL {series.lower[0]:.6g}"
    cv2.putText(image, legend, (left, height - 12), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def inspection_overlay(image: NDArray[Any], inspection: Inspection) -> NDArray[Any]:
    """The part in grey with the defect pixels (anomaly models) tinted, each defect
    region boxed and the verdict written on top."""
    scale = max(1, 400 // max(image.shape))
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if scale > 1:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    colour = RED if inspection.verdict is Verdict.DEFECTIVE else GREEN
    if inspection.mask is not None and inspection.mask.any():
        size = (canvas.shape[1], canvas.shape[0])  # enlarged like the part
        defective = cv2.resize(inspection.mask, size, interpolation=cv2.INTER_NEAREST) > 0
        tinted = canvas[defective] * (1 - MASK_OPACITY) + np.asarray(colour) * MASK_OPACITY
        canvas[defective] = tinted.astype(np.uint8)
    for box in inspection.boxes:
        cv2.rectangle(
            canvas,
            (box.x_min * scale, box.y_min * scale),
            (box.x_max * scale - 1, box.y_max * scale - 1),
            colour,
            2,
        )
    label = inspection.verdict.value
    if inspection.defect_class:
        label += (
            f": {inspection.defect_class} {inspection.probabilities[inspection.defect_class]:.2f}"
        )
    elif inspection.threshold:
        label += f": score {inspection.anomaly_score:.2f} / {inspection.threshold:.2f}"
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 22), WHITE, -1)
    cv2.putText(canvas, label, (4, 16), FONT, 0.5, colour, 1, cv2.LINE_AA)
    return canvas
