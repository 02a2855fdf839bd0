"""Prediction intervals calibrated on out-of-fold residuals (split-conformal, per band).

A model's errors grow and shift with the life it predicts: near the end of life the
degradation is visible and predictions are tight, while a machine that looks healthy may
have anything from a little to a lot of life left. So residuals (truth - prediction) from
cross-validation on the training units are grouped by band of the predicted value, and
each band keeps the residual quantiles that bound the chosen coverage. An interval is the
point estimate plus its band's offsets. Nothing here looks at test data.

Coverage holds for predictions drawn like the calibration residuals. A RUL model is asked
about a machine stopped at some point of its life, each machine once; residuals at every
cycle of every unit over-represent long-lived units and healthy cycles (FD001 test
coverage was 82 % at 90 % nominal). So the caller passes residuals at random cuts of each
held-out unit, the same number per unit (``rul_selection.CrossValidation.random_cuts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

# Inner edges of the predicted-RUL bands, in cycles (five bands up to the cap).
DEFAULT_EDGES = (25.0, 50.0, 75.0, 100.0)
DEFAULT_COVERAGE = 0.9
# A band with fewer residuals than this borrows the quantiles of all residuals.
MIN_BAND_ROWS = 50


def _conformal_quantile(values: Array, q: float) -> float:
    """The empirical q-quantile widened for a finite sample: rank ceil((n + 1) q) of n for
    an upper quantile, floor((n + 1) q) for a lower one (split-conformal)."""
    n = len(values)
    rank = min(n, math.ceil((n + 1) * q)) if q >= 0.5 else max(1, math.floor((n + 1) * q))
    return float(np.sort(values)[rank - 1])


@dataclass(frozen=True)
class ResidualBands:
    """Per band of the point estimate: offsets to its lower and upper interval ends."""

    edges: Array  # (bands - 1,) inner edges, ascending
    lower: Array  # (bands,) residual quantile at (1 - coverage) / 2, at most 0
    upper: Array  # (bands,) residual quantile at (1 + coverage) / 2, at least 0
    coverage: float

    @classmethod
    def fit(
        cls,
        predicted: Array,
        truth: Array,
        edges: tuple[float, ...] = DEFAULT_EDGES,
        coverage: float = DEFAULT_COVERAGE,
    ) -> ResidualBands:
        """From out-of-fold predictions and their targets."""
        residual = np.asarray(truth, dtype=np.float64) - np.asarray(predicted, dtype=np.float64)
        if len(residual) < MIN_BAND_ROWS:
            raise ValueError(f"{len(residual)} residuals; calibration needs {MIN_BAND_ROWS}")
        low_q, high_q = (1 - coverage) / 2, (1 + coverage) / 2
        band = np.searchsorted(np.asarray(edges), predicted, side="right")
        lower, upper = [], []
        for index in range(len(edges) + 1):
            chosen = residual[band == index]
            if len(chosen) < MIN_BAND_ROWS:
                chosen = residual
            lower.append(min(0.0, _conformal_quantile(chosen, low_q)))
            upper.append(max(0.0, _conformal_quantile(chosen, high_q)))
        return cls(
            np.asarray(edges, dtype=np.float64), np.asarray(lower), np.asarray(upper), coverage
        )

    def interval(self, point: Array, floor: float, ceiling: float) -> tuple[Array, Array]:
        """Lower and upper ends around ``point``, kept within [floor, ceiling]."""
        band = np.searchsorted(self.edges, point, side="right")
        lower = np.clip(point + self.lower[band], floor, ceiling)
        upper = np.clip(point + self.upper[band], floor, ceiling)
        return np.minimum(lower, point), np.maximum(upper, point)

    def to_arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        return {
            f"{prefix}.edges": self.edges,
            f"{prefix}.lower": self.lower,
            f"{prefix}.upper": self.upper,
            f"{prefix}.coverage": np.asarray([self.coverage]),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> ResidualBands:
        return cls(
            edges=np.asarray(arrays[f"{prefix}.edges"], dtype=np.float64),
            lower=np.asarray(arrays[f"{prefix}.lower"], dtype=np.float64),
            upper=np.asarray(arrays[f"{prefix}.upper"], dtype=np.float64),
            coverage=float(arrays[f"{prefix}.coverage"][0]),
        )
