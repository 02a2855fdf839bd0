"""Remaining useful life: a condition-normalised, gradient-boosted model over window features.

Trained on NASA C-MAPSS runs to failure with the piecewise-linear target capped at
``RulParams.target_cap`` cycles (a hyperparameter; reported RUL is always capped at
``RUL_CAP``, the cap the truth is scored against); predicts from the history of one
machine (one row per cycle of settings and sensors). The point estimate averages several
boosted ensembles (different seeds, each split seeing a random share of the features);
the interval comes from residuals of cross-validation on the training units
(``intervals.ResidualBands``). The health index is the predicted life as a fraction of
the cap: 1 is as good as new, 0 is at the end of life. Choosing the parameters (window
features and target cap included) and calibrating the interval is in ``rul_selection``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.maintenance.domain import cmapss
from services.maintenance.domain.features import (
    DEFAULT_FEATURE_SET,
    ConditionNormaliser,
    history_features,
)
from services.maintenance.domain.intervals import ResidualBands
from services.runtime.trees import TreeEnsemble

Array = NDArray[np.float64]

# Sensors that carry degradation in C-MAPSS; the others are constant per condition.
RUL_SENSORS: tuple[str, ...] = tuple(
    f"s{i}" for i in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21)
)
RUL_SETTINGS = cmapss.SETTING_NAMES
MIN_WINDOW_CYCLES = 10


@dataclass(frozen=True)
class RulParams:
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 200
    max_features: float = 0.3
    l2_regularization: float = 1.0
    seeds: int = 3
    # Where the training target stops rising: a higher cap teaches the healthy plateau
    # later, a lower one earlier; chosen by CV against truth capped at RUL_CAP.
    target_cap: float = cmapss.RUL_CAP
    feature_set: str = DEFAULT_FEATURE_SET

    def estimator(self, seed: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        options: dict[str, Any] = {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "max_features": self.max_features,
            "l2_regularization": self.l2_regularization,
            "early_stopping": False,
            "random_state": seed,
        }
        return HistGradientBoostingRegressor(**options)


@dataclass(frozen=True)
class RulEstimate:
    rul: float
    lower: float
    upper: float
    health_index: float
    cycles_used: int


class WindowTooShort(ValueError):
    """Fewer cycles than the model needs."""


@dataclass(frozen=True)
class RulModel:
    normaliser: ConditionNormaliser
    point: tuple[TreeEnsemble, ...]
    interval: ResidualBands
    cap: float = cmapss.RUL_CAP
    sensors: tuple[str, ...] = RUL_SENSORS
    settings: tuple[str, ...] = RUL_SETTINGS
    min_cycles: int = MIN_WINDOW_CYCLES
    feature_set: str = DEFAULT_FEATURE_SET
    metrics: dict[str, float] = field(default_factory=dict)

    def features(self, settings: Array, sensors: Array, first_age: float = 1.0) -> Array:
        z = self.normaliser.transform(settings, sensors)
        return history_features(z, first_age, self.feature_set)

    def predict_features(self, x: Array) -> tuple[Array, Array, Array]:
        point = np.mean([tree.predict_raw(x) for tree in self.point], axis=0)
        point = np.clip(point, 0.0, self.cap)
        lower, upper = self.interval.interval(point, 0.0, self.cap)
        return point, lower, upper

    def predict(self, settings: Array, sensors: Array, first_age: float = 1.0) -> RulEstimate:
        """RUL after the last row of one machine's history, oldest row first."""
        if len(sensors) < self.min_cycles:
            raise WindowTooShort(
                f"{len(sensors)} cycles given; the model needs at least {self.min_cycles}"
            )
        x = self.features(settings, sensors, first_age)[-1:]
        point, lower, upper = self.predict_features(x)
        rul = float(point[0])
        return RulEstimate(
            rul=rul,
            lower=float(lower[0]),
            upper=float(upper[0]),
            health_index=rul / self.cap,
            cycles_used=len(sensors),
        )

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        arrays: dict[str, NDArray[Any]] = {
            "normaliser.centers": self.normaliser.centers,
            "normaliser.setting_scale": self.normaliser.setting_scale,
            "normaliser.means": self.normaliser.means,
            "normaliser.stds": self.normaliser.stds,
            "cap": np.asarray([self.cap]),
            "min_cycles": np.asarray([self.min_cycles]),
            "point_count": np.asarray([len(self.point)]),
            "sensors": np.asarray(self.sensors),
            "settings": np.asarray(self.settings),
            "feature_set": np.asarray([self.feature_set]),
        }
        for index, tree in enumerate(self.point):
            arrays.update(tree.to_arrays(f"point{index}"))
        arrays.update(self.interval.to_arrays("interval"))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any) -> RulModel:
        normaliser = ConditionNormaliser(
            centers=np.asarray(arrays["normaliser.centers"]),
            setting_scale=np.asarray(arrays["normaliser.setting_scale"]),
            means=np.asarray(arrays["normaliser.means"]),
            stds=np.asarray(arrays["normaliser.stds"]),
        )
        count = int(arrays["point_count"][0])
        # Models saved before feature sets were named used the base set.
        feature_set = str(arrays["feature_set"][0]) if "feature_set" in arrays else "base"
        return cls(
            normaliser=normaliser,
            point=tuple(TreeEnsemble.from_arrays(arrays, f"point{i}") for i in range(count)),
            interval=ResidualBands.from_arrays(arrays, "interval"),
            cap=float(arrays["cap"][0]),
            sensors=tuple(str(s) for s in arrays["sensors"]),
            settings=tuple(str(s) for s in arrays["settings"]),
            min_cycles=int(arrays["min_cycles"][0]),
            feature_set=feature_set,
        )


def _sensor_columns(sensors: Sequence[str]) -> list[int]:
    return [cmapss.SENSOR_NAMES.index(name) for name in sensors]


def training_matrix(
    units: Sequence[cmapss.Unit],
    normaliser: ConditionNormaliser,
    cap: float = cmapss.RUL_CAP,
    feature_set: str = DEFAULT_FEATURE_SET,
) -> tuple[Array, Array, NDArray[np.int64]]:
    """Features at every cycle of every unit, the capped target, and the unit of each row."""
    columns = _sensor_columns(RUL_SENSORS)
    xs, ys, groups = [], [], []
    for unit in units:
        z = normaliser.transform(unit.settings, unit.sensors[:, columns])
        xs.append(history_features(z, feature_set=feature_set))
        ys.append(cmapss.training_target(unit.length, cap))
        groups.append(np.full(unit.length, unit.unit, dtype=np.int64))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(groups)


def fit_normaliser(units: Sequence[cmapss.Unit], conditions: int) -> ConditionNormaliser:
    columns = _sensor_columns(RUL_SENSORS)
    return ConditionNormaliser.fit(
        np.vstack([u.settings for u in units]),
        np.vstack([u.sensors[:, columns] for u in units]),
        conditions,
    )


def fit_point_estimators(x: Array, y: Array, params: RulParams) -> list[Any]:
    """The fitted scikit-learn regressors whose mean is the point estimate."""
    return [params.estimator(seed).fit(x, y) for seed in range(params.seeds)]


def fit_rul_model(
    units: Sequence[cmapss.Unit],
    conditions: int,
    members: Sequence[RulParams],
    interval: ResidualBands,
) -> RulModel:
    """The point estimate averages every seed of every member; they share a feature set."""
    feature_set = members[0].feature_set
    if any(params.feature_set != feature_set for params in members):
        raise ValueError("members of one RUL model must share a feature set")
    normaliser = fit_normaliser(units, conditions)
    estimators = []
    for params in members:
        x, y, _ = training_matrix(units, normaliser, params.target_cap, feature_set)
        estimators += fit_point_estimators(x, y, params)
    point = tuple(TreeEnsemble.from_sklearn(e) for e in estimators)
    return RulModel(normaliser=normaliser, point=point, interval=interval, feature_set=feature_set)


def predict_last_cycles(
    model: RulModel, units: Sequence[cmapss.Unit]
) -> tuple[Array, Array, Array]:
    """Point, lower and upper RUL after the last cycle of each (test) unit."""
    columns = _sensor_columns(model.sensors)
    x = np.vstack(
        [model.features(u.settings, u.sensors[:, columns], float(u.cycles[0]))[-1:] for u in units]
    )
    return model.predict_features(x)


def conditions_of(subset: str) -> int:
    return 6 if subset in ("FD002", "FD004") else 1
