"""Condition normalisation and window features for remaining-useful-life models.

Sensors of an engine move with its operating condition (altitude, Mach, throttle) far
more than with wear. The normaliser clusters the operating settings into conditions and
standardises each sensor per condition, so what is left is mostly degradation. The
features then summarise a unit's history up to each cycle: smoothed levels, recent
means, slopes over recent and all cycles, drift from the unit's own early baseline, and
its age. ``history_features`` computes them for every prefix of a run at once (training)
and its last row is what a prediction from a window uses, so both paths share one code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

EWM_ALPHAS = (0.1, 0.3)
MEAN_WINDOWS = (10, 30)
SLOPE_WINDOW = 30
BASELINE_CYCLES = 20
FEATURES_PER_SENSOR = len(EWM_ALPHAS) + len(MEAN_WINDOWS) + 3


@dataclass(frozen=True)
class ConditionNormaliser:
    """Nearest operating condition by scaled settings, then per-condition z-scores."""

    centers: Array  # (conditions, settings), in scaled units
    setting_scale: Array  # (settings,)
    means: Array  # (conditions, sensors)
    stds: Array  # (conditions, sensors)

    @classmethod
    def fit(
        cls, settings: Array, sensors: Array, conditions: int, seed: int = 0
    ) -> ConditionNormaliser:
        from sklearn.cluster import KMeans

        scale = settings.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        scaled = settings / scale
        if conditions == 1:
            centers = scaled.mean(axis=0, keepdims=True)
            labels = np.zeros(len(settings), dtype=np.int64)
        else:
            kmeans = KMeans(n_clusters=conditions, n_init=10, random_state=seed).fit(scaled)
            centers, labels = kmeans.cluster_centers_, kmeans.labels_
        means = np.stack([sensors[labels == c].mean(axis=0) for c in range(conditions)])
        stds = np.stack([sensors[labels == c].std(axis=0) for c in range(conditions)])
        return cls(centers, scale, means, np.where(stds > 1e-9, stds, 1.0))

    def condition_of(self, settings: Array) -> NDArray[np.int64]:
        scaled = settings / self.setting_scale
        distance = ((scaled[:, None, :] - self.centers[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(distance.argmin(axis=1), dtype=np.int64)

    def transform(self, settings: Array, sensors: Array) -> Array:
        condition = self.condition_of(settings)
        return np.asarray((sensors - self.means[condition]) / self.stds[condition])


def _ewm(z: Array, alpha: float) -> Array:
    # y[t] = alpha z[t] + (1 - alpha) y[t-1], started at the first value.
    out = np.empty_like(z)
    level = z[0]
    for t in range(len(z)):
        level = alpha * z[t] + (1 - alpha) * level
        out[t] = level
    return out


def _trailing_mean(csum: Array, window: int) -> Array:
    length = csum.shape[0] - 1
    end = np.arange(1, length + 1)
    start = np.maximum(0, end - window)
    return np.asarray((csum[end] - csum[start]) / (end - start)[:, None])


def _trailing_slope(z: Array, csum: Array, window: int | None) -> Array:
    """Least-squares slope per cycle over the trailing window (all history if None)."""
    length = z.shape[0]
    index = np.arange(length, dtype=np.float64)
    csum_iy = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(index[:, None] * z, axis=0)])
    end = np.arange(1, length + 1)
    start = np.zeros(length, dtype=np.int64) if window is None else np.maximum(0, end - window)
    n = (end - start).astype(np.float64)
    sum_i = (start + end - 1) * n / 2.0
    sum_ii = ((end - 1) * end * (2 * end - 1) - (start - 1) * start * (2 * start - 1)) / 6.0
    sum_y = csum[end] - csum[start]
    sum_iy = csum_iy[end] - csum_iy[start]
    denominator = n * sum_ii - sum_i**2
    safe = np.where(denominator > 0, denominator, 1.0)
    slope = (n[:, None] * sum_iy - sum_i[:, None] * sum_y) / safe[:, None]
    return np.asarray(np.where(denominator[:, None] > 0, slope, 0.0))


def history_features(z: Array, first_age: float = 1.0) -> Array:
    """Features at every cycle of one unit's normalised series ``z`` (cycles, sensors).

    ``first_age`` is the age in cycles of the first row (1 when the series starts at the
    beginning of life). Returns (cycles, sensors * FEATURES_PER_SENSOR + 1).
    """
    z = np.asarray(z, dtype=np.float64)
    csum = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    parts = [_ewm(z, alpha) for alpha in EWM_ALPHAS]
    parts += [_trailing_mean(csum, window) for window in MEAN_WINDOWS]
    parts.append(_trailing_slope(z, csum, SLOPE_WINDOW))
    parts.append(_trailing_slope(z, csum, None))
    baseline_end = np.minimum(np.arange(1, len(z) + 1), BASELINE_CYCLES)
    baseline = csum[baseline_end] / baseline_end[:, None]
    parts.append(parts[0] - baseline)
    age = first_age + np.arange(len(z), dtype=np.float64)
    return np.hstack([*parts, age[:, None]])


def feature_names(sensors: tuple[str, ...]) -> list[str]:
    kinds = [f"ewm{a}" for a in EWM_ALPHAS] + [f"mean{w}" for w in MEAN_WINDOWS]
    kinds += [f"slope{SLOPE_WINDOW}", "slope_all", "drift"]
    return [f"{s}_{k}" for k in kinds for s in sensors] + ["age"]
