"""Condition normalisation and window features for remaining-useful-life models.

Sensors of an engine move with its operating condition (altitude, Mach, throttle) far
more than with wear. The normaliser clusters the operating settings into conditions and
standardises each sensor per condition, so what is left is mostly degradation. The
features then summarise a unit's history up to each cycle: smoothed levels, recent
means, slopes over recent and all cycles, drift from the unit's own early baseline, and
its age; the ``wide`` set adds shorter and medium windows and each sensor's range over
the last cycles. ``history_features`` computes them for every prefix of a run at once
(training) and its last row is what a prediction from a window uses, so both paths share
one code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

BASELINE_CYCLES = 20


@dataclass(frozen=True)
class FeatureSet:
    """Which windows summarise each sensor (besides the all-history slope and the drift)."""

    ewm_alphas: tuple[float, ...]
    mean_windows: tuple[int, ...]
    slope_windows: tuple[int, ...]
    range_windows: tuple[int, ...]  # trailing minimum and maximum

    @property
    def per_sensor(self) -> int:
        windows = self.ewm_alphas + self.mean_windows + self.slope_windows
        return len(windows) + 2 * len(self.range_windows) + 2

    def names(self, sensors: tuple[str, ...]) -> list[str]:
        kinds = [f"ewm{a}" for a in self.ewm_alphas] + [f"mean{w}" for w in self.mean_windows]
        kinds += [f"slope{w}" for w in self.slope_windows] + ["slope_all", "drift"]
        kinds += [f"{k}{w}" for w in self.range_windows for k in ("min", "max")]
        return [f"{s}_{k}" for k in kinds for s in sensors] + ["age"]


# Named so an artifact records which one its model was fitted on.
FEATURE_SETS = {
    "base": FeatureSet((0.1, 0.3), (10, 30), (30,), ()),
    "wide": FeatureSet((0.1, 0.3), (5, 10, 20, 30), (10, 20, 30), (20,)),
}
DEFAULT_FEATURE_SET = "base"


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


def _trailing_range(z: Array, window: int) -> tuple[Array, Array]:
    """Minimum and maximum per cycle over the trailing window (fewer cycles at the start)."""
    # Repeating the first row keeps the early windows' extremes those of the rows seen.
    padded = np.vstack([np.repeat(z[:1], window - 1, axis=0), z])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return windows.min(axis=2), windows.max(axis=2)


def history_features(
    z: Array, first_age: float = 1.0, feature_set: str = DEFAULT_FEATURE_SET
) -> Array:
    """Features at every cycle of one unit's normalised series ``z`` (cycles, sensors).

    ``first_age`` is the age in cycles of the first row (1 when the series starts at the
    beginning of life). Returns (cycles, sensors * per_sensor + 1), in the order of
    ``FeatureSet.names``.
    """
    spec = FEATURE_SETS[feature_set]
    z = np.asarray(z, dtype=np.float64)
    csum = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    parts = [_ewm(z, alpha) for alpha in spec.ewm_alphas]
    parts += [_trailing_mean(csum, window) for window in spec.mean_windows]
    parts += [_trailing_slope(z, csum, window) for window in spec.slope_windows]
    parts.append(_trailing_slope(z, csum, None))
    baseline_end = np.minimum(np.arange(1, len(z) + 1), BASELINE_CYCLES)
    baseline = csum[baseline_end] / baseline_end[:, None]
    parts.append(parts[0] - baseline)
    for window in spec.range_windows:
        parts.extend(_trailing_range(z, window))
    age = first_age + np.arange(len(z), dtype=np.float64)
    return np.hstack([*parts, age[:, None]])


def feature_names(sensors: tuple[str, ...], feature_set: str = DEFAULT_FEATURE_SET) -> list[str]:
    return FEATURE_SETS[feature_set].names(sensors)
