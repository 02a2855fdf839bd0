"""Choosing and calibrating a RUL model with the training units only.

Every choice is made by K-fold cross-validation grouped by unit (a unit's cycles are never
split between fitting and scoring, since neighbouring cycles of one engine are nearly the
same sample): the parameters are the candidate of a small grid with the lowest
out-of-fold RMSE, and the interval is calibrated on the out-of-fold residuals of the
chosen parameters. A test set, where there is one, is for reporting only.

Scores count every cycle of each held-out unit against the capped target, so the
truncation points are spread uniformly over life.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.maintenance.domain import cmapss
from services.maintenance.domain.intervals import ResidualBands
from services.maintenance.domain.rul import (
    RulModel,
    RulParams,
    fit_normaliser,
    fit_point_estimators,
    fit_rul_model,
    training_matrix,
)

Array = NDArray[np.float64]

# The grid: tree size and leaf size, the two settings the out-of-fold error moved with
# most; one seed per candidate while choosing (the chosen one is then refitted with all).
PARAM_GRID: tuple[RulParams, ...] = tuple(
    RulParams(max_leaf_nodes=leaves, min_samples_leaf=leaf_rows, seeds=1)
    for leaves in (15, 31)
    for leaf_rows in (50, 500)
)
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold point predictions for every cycle of every unit, with their targets."""

    params: RulParams
    predicted: Array
    target: Array

    @property
    def rmse(self) -> float:
        return cmapss.rmse(self.predicted, self.target)


def cross_validate(
    units: Sequence[cmapss.Unit],
    conditions: int,
    params: RulParams,
    folds: int = DEFAULT_FOLDS,
    cap: float = cmapss.RUL_CAP,
) -> CrossValidation:
    """Folds split by unit; the condition normaliser is refitted inside each fold."""
    from sklearn.model_selection import GroupKFold

    ids = np.asarray([u.unit for u in units])
    predicted, target = [], []
    for train_index, test_index in GroupKFold(n_splits=folds).split(ids, groups=ids):
        fitting = [units[i] for i in train_index]
        normaliser = fit_normaliser(fitting, conditions)
        x, y, _ = training_matrix(fitting, normaliser, cap)
        estimators = fit_point_estimators(x, y, params)
        x_out, y_out, _ = training_matrix([units[i] for i in test_index], normaliser, cap)
        point = np.mean([e.predict(x_out) for e in estimators], axis=0)
        predicted.append(np.clip(point, 0.0, cap))
        target.append(y_out)
    return CrossValidation(params, np.concatenate(predicted), np.concatenate(target))


@dataclass(frozen=True)
class TrainedRul:
    model: RulModel
    params: RulParams
    metrics: dict[str, float]
    grid: list[dict[str, Any]]  # each candidate's settings and out-of-fold RMSE


def train_rul(
    units: Sequence[cmapss.Unit],
    conditions: int,
    grid: Sequence[RulParams] = PARAM_GRID,
    folds: int = DEFAULT_FOLDS,
    seeds: int = RulParams.seeds,
) -> TrainedRul:
    """Choose parameters by grouped CV, calibrate the interval on the chosen candidate's
    out-of-fold residuals, and fit the model with ``seeds`` seeds on every unit.

    The residuals come from one seed per fold; the shipped mean over several seeds errs a
    little less, so the interval leans wide rather than narrow (and the training costs
    one cross-validation per candidate, not one more for the ensemble).
    """
    results = [cross_validate(units, conditions, params, folds) for params in grid]
    best = min(results, key=lambda r: r.rmse)
    interval = ResidualBands.fit(best.predicted, best.target)
    chosen = replace(best.params, seeds=seeds)
    model = fit_rul_model(units, conditions, chosen, interval)
    metrics = {"train_units": float(len(units)), f"cv{folds}_rmse_capped": best.rmse}
    table = [
        {
            "max_leaf_nodes": r.params.max_leaf_nodes,
            "min_samples_leaf": r.params.min_samples_leaf,
            "cv_rmse": round(r.rmse, 4),
        }
        for r in results
    ]
    return TrainedRul(model=model, params=chosen, metrics=metrics, grid=table)
