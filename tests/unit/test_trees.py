"""Tree ensembles kept as arrays decide as the scikit-learn models they came from."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from services.runtime.trees import TreeEnsemble, sigmoid


def test_tree_export_reproduces_scikit_learn_predictions():
    generator = np.random.default_rng(0)
    x = generator.normal(size=(400, 4))
    y = x[:, 0] * 2 + np.sin(x[:, 1]) + generator.normal(0, 0.1, 400)
    x[::17, 2] = np.nan
    regressor = HistGradientBoostingRegressor(max_iter=30, early_stopping=False).fit(x, y)
    trees = TreeEnsemble.from_sklearn(regressor)
    np.testing.assert_allclose(trees.predict_raw(x), regressor.predict(x), rtol=1e-9, atol=1e-9)
    classifier = HistGradientBoostingClassifier(max_iter=20, early_stopping=False).fit(x, y > 0)
    exported = TreeEnsemble.from_sklearn(classifier)
    np.testing.assert_allclose(
        sigmoid(exported.predict_raw(x)), classifier.predict_proba(x)[:, 1], atol=1e-9
    )
    again = TreeEnsemble.from_arrays(exported.to_arrays("m"), "m")
    np.testing.assert_allclose(again.predict_raw(x), exported.predict_raw(x))
