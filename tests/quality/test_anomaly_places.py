"""The anomaly model judges a patch against good patches at the same place (middle, an
edge, a corner): where good parts vary more, the same distance counts for less."""

from __future__ import annotations

import cv2
import numpy as np

from services.quality.domain.inspection.anomaly import (
    PLACES,
    AnomalyModel,
    fit_anomaly_model,
    patch_descriptors,
)


def part(rng: np.random.Generator, *, rough_left: float = 12.0) -> np.ndarray:
    """A textured 160 x 160 part whose left 20 columns are as rough as ``rough_left``."""
    noise = rng.normal(120, 12, (160, 160)).astype(np.float32)
    noise[:, :20] = rng.normal(120, rough_left, (160, 20))
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.0), 0, 255).astype(np.uint8)


def test_places_number_the_edges_a_patch_touches():
    grid = patch_descriptors(part(np.random.default_rng(1)))
    places = grid.places().reshape(grid.rows, grid.cols)
    assert places[1:-1, 1:-1].max() == 0  # the middle
    assert {places[0, 1], places[-1, 1], places[1, 0], places[1, -1]} == {1, 2, 4, 8}
    assert sorted(places[[0, 0, -1, -1], [0, -1, 0, -1]]) == [5, 6, 9, 10]  # two edges each
    assert places.max() < PLACES


def test_a_rough_edge_of_good_parts_is_ordinary_there_but_a_blob_inside_is_not():
    rng = np.random.default_rng(4)
    good = [patch_descriptors(part(rng, rough_left=36.0)) for _ in range(12)]
    calibration = [patch_descriptors(part(rng, rough_left=36.0)) for _ in range(8)]
    model = fit_anomaly_model(good, calibration)
    left_edge, middle = 4, 0
    assert model.place_scale[left_edge] > 1.5 * model.place_scale[middle]

    fresh = patch_descriptors(part(rng, rough_left=36.0))
    scores, places = model.judge(fresh)[1], fresh.places()
    # A typical good patch scores about 1 wherever it is, the rough edge included.
    for place in (middle, left_edge):
        assert 0.7 < np.median(scores[places == place]) < 1.4
    assert np.allclose(scores, model.nearest_distances(fresh) / model.place_scale[places])

    blob = part(rng, rough_left=36.0)
    cv2.circle(blob, (90, 80), 7, 20, -1)
    blob_grid = patch_descriptors(blob)
    assert AnomalyModel.image_score(blob_grid, model.judge(blob_grid)[1]) > max(
        model.image_threshold, 1.5 * AnomalyModel.image_score(fresh, scores)
    )
