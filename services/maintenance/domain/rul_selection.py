"""Choosing and calibrating a RUL model with the training units only.

Every choice is made by K-fold cross-validation grouped by unit (a unit's cycles are never
split between fitting and scoring, since neighbouring cycles of one engine are nearly the
same sample), in two stages: the tree size and leaf size on a small grid, then, with
those, the feature set and the training target's cap. One more candidate is the mean of
the best few (``ENSEMBLE_SIZE``); it is kept only if its out-of-fold error is lower. The
interval is calibrated on the out-of-fold residuals of what is chosen, at random cuts
drawn as below. A test set, where there is one, is for reporting only.

A model is asked for the RUL after the last cycle of a machine stopped at some unknown
point of its life (that is how the C-MAPSS test units are cut). So candidates are ranked
by the RMSE of a held-out unit cut at a random cycle, each unit counting once: every
cycle from the shortest usable window to failure is an equally likely cut, and since the
features are causal, the prediction at that cycle is the prediction for that cut. The
RMSE over every cycle, which weights long-lived units more, is reported alongside.
Both are against the target capped at ``RUL_CAP``, whatever cap a candidate trained on.
The interval is calibrated the same way: on ``CALIBRATION_CUTS`` random cuts of each
held-out unit (``CrossValidation.random_cuts``), so every unit weighs the same there too.
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
    MIN_WINDOW_CYCLES,
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
# Second stage, around the first stage's winner (the brief list of the usual C-MAPSS
# choices: caps 115-135 cycles, the base or the wide window features).
TARGET_CAPS = (115.0, 125.0, 135.0)
FEATURE_SET_NAMES = ("base", "wide")
# Candidates averaged into the blended one (of the winner's feature set, best first).
ENSEMBLE_SIZE = 3
DEFAULT_FOLDS = 5
# Random cuts of each held-out unit the interval is calibrated on: one per unit would leave
# too few residuals in each band of predicted RUL (FD001 has 100 units, five bands).
CALIBRATION_CUTS = 20
CALIBRATION_SEED = 0


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold point predictions for every cycle of every unit, with their targets and
    the weight of each cycle as the cut of a randomly stopped unit."""

    members: tuple[RulParams, ...]  # one, or those whose predictions are averaged
    predicted: Array
    target: Array
    cut_weight: Array
    lengths: NDArray[np.int64]  # cycles of each held-out unit, in the order of the rows

    @property
    def rmse(self) -> float:
        """Over every cycle of every held-out unit."""
        return cmapss.rmse(self.predicted, self.target)

    @property
    def truncated_rmse(self) -> float:
        """Expected over a random cut of each held-out unit, each unit counting once."""
        squared = (self.predicted - self.target) ** 2
        return float(np.sqrt(np.sum(self.cut_weight * squared) / np.sum(self.cut_weight)))

    def random_cuts(self, per_unit: int, seed: int) -> NDArray[np.intp]:
        """Rows of ``per_unit`` cuts of each held-out unit, drawn by ``cut_weight``: every
        unit the same number, however long it lived."""
        generator = np.random.default_rng(seed)
        starts = np.cumsum(self.lengths) - self.lengths
        rows = []
        for start, length in zip(starts, self.lengths, strict=True):
            weight = self.cut_weight[start : start + length]
            rows.append(start + generator.choice(length, per_unit, p=weight))
        return np.concatenate(rows)


def cut_weights(length: int, min_cycles: int = MIN_WINDOW_CYCLES) -> Array:
    """Each cycle a window of at least ``min_cycles`` can end at is an equally likely cut;
    the weights of one unit sum to 1."""
    weight = np.zeros(length)
    usable = max(1, length - min_cycles + 1)
    weight[length - usable :] = 1.0 / usable
    return weight


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
    predicted: list[Array] = []
    target: list[Array] = []
    weight: list[Array] = []
    lengths: list[int] = []
    for train_index, test_index in GroupKFold(n_splits=folds).split(ids, groups=ids):
        fitting = [units[i] for i in train_index]
        held_out = [units[i] for i in test_index]
        normaliser = fit_normaliser(fitting, conditions)
        x, y, _ = training_matrix(fitting, normaliser, params.target_cap, params.feature_set)
        estimators = fit_point_estimators(x, y, params)
        x_out, y_out, _ = training_matrix(held_out, normaliser, cap, params.feature_set)
        point = np.mean([e.predict(x_out) for e in estimators], axis=0)
        predicted.append(np.clip(point, 0.0, cap))
        target.append(y_out)
        weight.extend(cut_weights(u.length) for u in held_out)
        lengths.extend(u.length for u in held_out)
    return CrossValidation(
        (params,),
        np.concatenate(predicted),
        np.concatenate(target),
        np.concatenate(weight),
        np.asarray(lengths, dtype=np.int64),
    )


def blend(results: Sequence[CrossValidation]) -> CrossValidation:
    """The mean of several candidates' out-of-fold predictions (same units, same order)."""
    first = results[0]
    return CrossValidation(
        tuple(p for r in results for p in r.members),
        np.mean([r.predicted for r in results], axis=0),
        first.target,
        first.cut_weight,
        first.lengths,
    )


def blend_of_best(results: Sequence[CrossValidation], size: int = ENSEMBLE_SIZE) -> CrossValidation:
    """The blend of the ``size`` best candidates sharing the best one's feature set (a
    model computes one feature set)."""
    ranked = sorted(results, key=lambda r: r.truncated_rmse)
    feature_set = ranked[0].members[0].feature_set
    return blend([r for r in ranked if r.members[0].feature_set == feature_set][:size])


@dataclass(frozen=True)
class TrainedRul:
    model: RulModel
    members: tuple[RulParams, ...]  # the point estimate averages all of their seeds
    metrics: dict[str, float]
    grid: list[dict[str, Any]]  # each candidate's settings and out-of-fold RMSE


def second_stage(
    best: RulParams,
    caps: Sequence[float] = TARGET_CAPS,
    feature_sets: Sequence[str] = FEATURE_SET_NAMES,
) -> list[RulParams]:
    """The first stage's winner with each other target cap and feature set."""
    variants = [replace(best, target_cap=c, feature_set=f) for f in feature_sets for c in caps]
    return [params for params in variants if params != best]


def train_rul(
    units: Sequence[cmapss.Unit],
    conditions: int,
    grid: Sequence[RulParams] = PARAM_GRID,
    folds: int = DEFAULT_FOLDS,
    seeds: int = RulParams.seeds,
    caps: Sequence[float] = TARGET_CAPS,
    feature_sets: Sequence[str] = FEATURE_SET_NAMES,
) -> TrainedRul:
    """Choose parameters by grouped CV (``grid``, then ``second_stage`` of its winner, then
    the blend of the best), calibrate the interval on the chosen candidate's out-of-fold
    residuals at ``CALIBRATION_CUTS`` random cuts of each unit, and fit the model with
    ``seeds`` seeds of each member on every unit.

    The residuals come from one seed per fold; the shipped mean over several seeds errs a
    little less, so the interval leans wide rather than narrow (and the training costs
    one cross-validation per candidate, not one more for the ensemble).
    """
    results = [cross_validate(units, conditions, params, folds) for params in grid]
    stage_best = min(results, key=lambda r: r.truncated_rmse)
    for params in second_stage(stage_best.members[0], caps, feature_sets):
        results.append(cross_validate(units, conditions, params, folds))
    blended = blend_of_best(results)
    # The single best first, so that a blend only wins by erring less.
    best = min([*results, blended], key=lambda r: r.truncated_rmse)
    cuts = best.random_cuts(CALIBRATION_CUTS, CALIBRATION_SEED)
    interval = ResidualBands.fit(best.predicted[cuts], best.target[cuts])
    members = tuple(replace(params, seeds=seeds) for params in best.members)
    model = fit_rul_model(units, conditions, members, interval)
    metrics = {
        "train_units": float(len(units)),
        f"cv{folds}_rmse_capped": best.rmse,
        f"cv{folds}_rmse_capped_random_cut": best.truncated_rmse,
        f"cv{folds}_rmse_capped_random_cut_blend": blended.truncated_rmse,
        "blend_members": float(len(blended.members)),
    }
    table = [
        {
            "max_leaf_nodes": r.members[0].max_leaf_nodes,
            "min_samples_leaf": r.members[0].min_samples_leaf,
            "target_cap": r.members[0].target_cap,
            "feature_set": r.members[0].feature_set,
            "cv_rmse": round(r.rmse, 4),
            "cv_rmse_random_cut": round(r.truncated_rmse, 4),
        }
        for r in results
    ]
    return TrainedRul(model=model, members=members, metrics=metrics, grid=table)
