"""Per-machine anomaly model: distance from the machine's own normal behaviour.

Fitted on a period the operator declares normal: a shrunk (Ledoit-Wolf) covariance of
the machine's sensors, so correlated sensors drifting apart are noticed too. The score
of a time step is its squared Mahalanobis distance divided by the number of sensors
(about 1 for normal steps); the threshold is the 99.5th percentile of the training
scores. The model is a handful of numbers, stored as JSON in the service's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.runtime.errors import FailedPrecondition

MIN_STEPS_PER_SENSOR = 3
MIN_STEPS = 20
THRESHOLD_PERCENTILE = 99.5


@dataclass(frozen=True)
class AnomalyModel:
    sensors: tuple[str, ...]
    location: NDArray[np.float64]
    precision: NDArray[np.float64]
    threshold: float
    training_steps: int

    @classmethod
    def fit(cls, sensors: tuple[str, ...], values: NDArray[np.float64]) -> AnomalyModel:
        from sklearn.covariance import LedoitWolf

        needed = max(MIN_STEPS, MIN_STEPS_PER_SENSOR * len(sensors))
        if len(values) < needed:
            raise FailedPrecondition(
                f"{len(values)} complete time steps in the normal period; "
                f"{needed} needed for {len(sensors)} sensors"
            )
        # Scale first so sensors in large units do not dominate the shrinkage.
        estimator = LedoitWolf().fit(values)
        model = cls(
            sensors=sensors,
            location=np.asarray(estimator.location_, dtype=np.float64),
            precision=np.asarray(estimator.precision_, dtype=np.float64),
            threshold=0.0,
            training_steps=len(values),
        )
        threshold = float(np.percentile(model.score(values), THRESHOLD_PERCENTILE))
        return cls(sensors, model.location, model.precision, threshold, len(values))

    def score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        centred = np.asarray(values, dtype=np.float64) - self.location
        distance = np.einsum("ij,jk,ik->i", centred, self.precision, centred)
        return np.asarray(distance / len(self.sensors))

    def to_json(self) -> dict[str, Any]:
        return {
            "sensors": list(self.sensors),
            "location": self.location.tolist(),
            "precision": self.precision.tolist(),
            "threshold": self.threshold,
            "training_steps": self.training_steps,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnomalyModel:
        return cls(
            sensors=tuple(data["sensors"]),
            location=np.asarray(data["location"], dtype=np.float64),
            precision=np.asarray(data["precision"], dtype=np.float64),
            threshold=float(data["threshold"]),
            training_steps=int(data["training_steps"]),
        )
