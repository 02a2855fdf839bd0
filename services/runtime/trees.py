"""Gradient-boosted tree ensembles as plain arrays: saved without pickle, predicted in NumPy.

A fitted scikit-learn HistGradientBoosting model is flattened into one node table
(feature, threshold, children, leaf value) so a model file is a NumPy ``.npz`` loaded
with ``allow_pickle=False``: loading a model can never run code. ``predict_raw``
reproduces scikit-learn's raw prediction (baseline + sum of leaf values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class TreeEnsemble:
    """Additive trees: ``roots[t]`` indexes the first node of tree ``t`` in the tables."""

    baseline: float
    roots: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: Array
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    value: Array
    is_leaf: NDArray[np.bool_]
    missing_left: NDArray[np.bool_]
    n_features: int

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """From a fitted single-output HistGradientBoostingRegressor/binary Classifier."""
        if getattr(model, "n_trees_per_iteration_", 1) != 1:
            raise ValueError("only single-output ensembles are supported")
        tables, roots, offset = [], [], 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            tables.append((nodes, offset))
            roots.append(offset)
            offset += len(nodes)
        if not tables:
            raise ValueError("the model has no trees")

        def column(name: str, dtype: Any, shift: bool = False) -> Any:
            parts = []
            for nodes, start in tables:
                values = nodes[name].astype(dtype)
                parts.append(values + start if shift else values)
            return np.concatenate(parts)

        return cls(
            baseline=float(np.ravel(model._baseline_prediction)[0]),
            roots=np.asarray(roots, dtype=np.int64),
            feature=column("feature_idx", np.int64),
            threshold=column("num_threshold", np.float64),
            left=column("left", np.int64, shift=True),
            right=column("right", np.int64, shift=True),
            value=column("value", np.float64),
            is_leaf=column("is_leaf", np.bool_),
            missing_left=column("missing_go_to_left", np.bool_),
            n_features=int(model.n_features_in_),
        )

    def predict_raw(self, x: Array) -> Array:
        """Raw scores (before any link function) for the rows of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (rows, {self.n_features}) features, got {x.shape}")
        # One entry per (row, tree), row-major; each level moves only the entries not yet
        # at a leaf, so the shallow trees stop costing anything once they are done.
        trees = len(self.roots)
        node = np.tile(self.roots, len(x))
        row = np.repeat(np.arange(len(x)), trees)
        walking = np.flatnonzero(~self.is_leaf[node])
        while walking.size:
            at = node[walking]
            values = x[row[walking], self.feature[at]]
            go_left = np.where(
                np.isnan(values), self.missing_left[at], values <= self.threshold[at]
            )
            node[walking] = np.where(go_left, self.left[at], self.right[at])
            walking = walking[~self.is_leaf[node[walking]]]
        return np.asarray(self.baseline + self.value[node].reshape(len(x), trees).sum(axis=1))

    def to_arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        return {
            f"{prefix}.baseline": np.asarray([self.baseline]),
            f"{prefix}.roots": self.roots.astype(np.int32),
            f"{prefix}.feature": self.feature.astype(np.int16),
            f"{prefix}.threshold": self.threshold,
            f"{prefix}.left": self.left.astype(np.int32),
            f"{prefix}.right": self.right.astype(np.int32),
            f"{prefix}.value": self.value,
            f"{prefix}.is_leaf": self.is_leaf,
            f"{prefix}.missing_left": self.missing_left,
            f"{prefix}.n_features": np.asarray([self.n_features]),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> TreeEnsemble:
        def get(name: str) -> NDArray[Any]:
            return np.asarray(arrays[f"{prefix}.{name}"])

        return cls(
            baseline=float(get("baseline")[0]),
            roots=get("roots").astype(np.int64),
            feature=get("feature").astype(np.int64),
            threshold=get("threshold").astype(np.float64),
            left=get("left").astype(np.int64),
            right=get("right").astype(np.int64),
            value=get("value").astype(np.float64),
            is_leaf=get("is_leaf").astype(np.bool_),
            missing_left=get("missing_left").astype(np.bool_),
            n_features=int(get("n_features")[0]),
        )


def sigmoid(raw: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-raw)))
