"""Failure-type prediction for a milling machine, trained on AI4I 2020.

Inputs are one snapshot of a machine (product quality type, temperatures, speed,
torque, tool wear); outputs are the probability of each predictable failure mode and of
any failure. Label treatment (the data set's known inconsistencies):

- Modes are learned one binary model each (TWF, HDF, PWF, OSF), so the 24 rows with
  several modes are positives for each of their modes.
- RNF (random failure) is by construction independent of the inputs (0.1 % chance per
  process), so it is not modelled; its 18 rows flagged RNF without ``Machine failure``
  and the RNF-only failures count as negatives for the four modes.
- The 9 rows with ``Machine failure = 1`` but no mode flag are dropped from training and
  evaluation: their cause is unknown, and calling them negatives would teach the model
  that a failure looks healthy.

Failure probability = 1 - prod(1 - p_mode), treating modes as independent given inputs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.runtime.trees import TreeEnsemble, sigmoid

Array = NDArray[np.float64]

MODES = ("TWF", "HDF", "PWF", "OSF")
MODE_NAMES = {
    "TWF": "tool wear failure",
    "HDF": "heat dissipation failure",
    "PWF": "power failure",
    "OSF": "overstrain failure",
}
PRODUCT_TYPES = ("L", "M", "H")
INPUTS = (
    "air_temperature_k",
    "process_temperature_k",
    "rotational_speed_rpm",
    "torque_nm",
    "tool_wear_min",
)
# Physically plausible ranges; the training data lies well inside them.
INPUT_RANGES = {
    "air_temperature_k": (200.0, 400.0),
    "process_temperature_k": (200.0, 450.0),
    "rotational_speed_rpm": (0.0, 10_000.0),
    "torque_nm": (0.0, 500.0),
    "tool_wear_min": (0.0, 10_000.0),
}


@dataclass(frozen=True)
class MachineSnapshot:
    product_type: str
    air_temperature_k: float
    process_temperature_k: float
    rotational_speed_rpm: float
    torque_nm: float
    tool_wear_min: float


@dataclass(frozen=True)
class FailurePrediction:
    failure_probability: float
    mode_probabilities: Mapping[str, float]

    @property
    def likeliest_mode(self) -> str:
        return max(self.mode_probabilities, key=lambda m: self.mode_probabilities[m])


def snapshot_features(snapshots: Sequence[MachineSnapshot]) -> Array:
    rows = []
    for s in snapshots:
        power_w = s.torque_nm * s.rotational_speed_rpm * 2 * math.pi / 60
        rows.append(
            [
                float(PRODUCT_TYPES.index(s.product_type)),
                s.air_temperature_k,
                s.process_temperature_k,
                s.rotational_speed_rpm,
                s.torque_nm,
                s.tool_wear_min,
                s.process_temperature_k - s.air_temperature_k,
                power_w,
                s.tool_wear_min * s.torque_nm,
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


@dataclass(frozen=True)
class FailureModel:
    modes: Mapping[str, TreeEnsemble]

    def predict_many(self, snapshots: Sequence[MachineSnapshot]) -> list[FailurePrediction]:
        x = snapshot_features(snapshots)
        probabilities = {mode: sigmoid(tree.predict_raw(x)) for mode, tree in self.modes.items()}
        out = []
        for row in range(len(snapshots)):
            per_mode = {mode: float(p[row]) for mode, p in probabilities.items()}
            survive = float(np.prod([1.0 - p for p in per_mode.values()]))
            out.append(FailurePrediction(1.0 - survive, per_mode))
        return out

    def predict(self, snapshot: MachineSnapshot) -> FailurePrediction:
        return self.predict_many([snapshot])[0]

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        arrays: dict[str, NDArray[Any]] = {"modes": np.asarray(list(self.modes))}
        for mode, tree in self.modes.items():
            arrays.update(tree.to_arrays(mode))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any) -> FailureModel:
        modes = [str(m) for m in arrays["modes"]]
        return cls({m: TreeEnsemble.from_arrays(arrays, m) for m in modes})


@dataclass(frozen=True)
class Ai4iData:
    snapshots: list[MachineSnapshot]
    labels: dict[str, NDArray[np.int64]]
    any_failure: NDArray[np.int64]
    dropped_unknown_cause: int


def load_ai4i(path: Path) -> Ai4iData:
    snapshots: list[MachineSnapshot] = []
    labels: dict[str, list[int]] = {m: [] for m in MODES}
    any_failure: list[int] = []
    dropped = 0
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            flags = {m: int(row[m]) for m in (*MODES, "RNF")}
            failed = int(row["Machine failure"])
            if failed and not any(flags.values()):
                dropped += 1
                continue
            snapshots.append(
                MachineSnapshot(
                    product_type=row["Type"],
                    air_temperature_k=float(row["Air temperature [K]"]),
                    process_temperature_k=float(row["Process temperature [K]"]),
                    rotational_speed_rpm=float(row["Rotational speed [rpm]"]),
                    torque_nm=float(row["Torque [Nm]"]),
                    tool_wear_min=float(row["Tool wear [min]"]),
                )
            )
            for m in MODES:
                labels[m].append(flags[m])
            any_failure.append(int(any(flags[m] for m in MODES)))
    return Ai4iData(
        snapshots,
        {m: np.asarray(v, dtype=np.int64) for m, v in labels.items()},
        np.asarray(any_failure, dtype=np.int64),
        dropped,
    )


def _classifier(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=10,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def fit_failure_model(x: Array, labels: Mapping[str, NDArray[np.int64]]) -> FailureModel:
    return FailureModel(
        {m: TreeEnsemble.from_sklearn(_classifier(0).fit(x, labels[m])) for m in labels}
    )


def cross_validate(data: Ai4iData, folds: int = 5) -> dict[str, float]:
    """Stratified CV: PR-AUC and F1 (at 0.5) per mode and for any predictable failure."""
    from sklearn.metrics import average_precision_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    x = snapshot_features(data.snapshots)
    out_of_fold = {m: np.zeros(len(x)) for m in MODES}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train, test in splitter.split(x, data.any_failure):
        model = fit_failure_model(x[train], {m: data.labels[m][train] for m in MODES})
        for m in MODES:
            out_of_fold[m][test] = sigmoid(model.modes[m].predict_raw(x[test]))
    metrics: dict[str, float] = {}
    for m in MODES:
        metrics[f"pr_auc_{m}"] = float(average_precision_score(data.labels[m], out_of_fold[m]))
        metrics[f"f1_{m}"] = float(f1_score(data.labels[m], out_of_fold[m] >= 0.5))
    failure = 1.0 - np.prod([1.0 - out_of_fold[m] for m in MODES], axis=0)
    metrics["pr_auc_any"] = float(average_precision_score(data.any_failure, failure))
    metrics["f1_any"] = float(f1_score(data.any_failure, failure >= 0.5))
    return metrics
