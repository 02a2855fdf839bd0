"""Given defective parts with masks, the anomaly model learns what defects look like: a
faint defect the good bank alone scores as ordinary texture stands out to the head."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from services.quality.domain.inspection.anomaly import (
    AnomalyModel,
    fit_anomaly_model,
    patch_coverage,
    patch_descriptors,
)


def textured(rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(120, 12, (160, 160)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.0), 0, 255).astype(np.uint8)


def scratched(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A part with a faint bright scratch somewhere inside (about 1.5 standard deviations
    of the texture), and the scratch's mask."""
    image, mask = textured(rng), np.zeros((160, 160), np.uint8)
    start = rng.integers(30, 60, 2)
    end = start + rng.integers(50, 80, 2)
    cv2.line(mask, tuple(int(v) for v in start), tuple(int(v) for v in end), 255, 2)
    image = np.where(mask > 0, np.clip(image.astype(int) + 5, 0, 255), image)
    return image.astype(np.uint8), mask > 0


def test_patch_coverage_is_the_share_of_each_patch_inside_the_mask():
    mask = np.zeros((224, 448), bool)  # 224 high: patches are cut at the image's scale
    mask[:48, :48] = True
    grid = patch_descriptors(np.zeros((224, 448), np.uint8))
    coverage = patch_coverage(grid, mask).reshape(grid.rows, grid.cols)
    assert coverage[0, 0] == coverage[0, 1] == coverage[2, 2] == 1.0  # patches 0-23 .. 24-47
    assert coverage[0, 3] == 0.5  # columns 36-59: half inside
    assert coverage[:, 4:].max() == 0.0 and coverage[4:].max() == 0.0
    half = patch_coverage(
        patch_descriptors(np.zeros((448, 896), np.uint8)), mask.repeat(2, axis=0).repeat(2, axis=1)
    )
    assert np.allclose(half, patch_coverage(grid, mask), atol=1e-6)  # resized like the image


def test_a_defect_head_finds_faint_scratches_the_good_bank_scores_as_ordinary():
    rng = np.random.default_rng(21)
    good = [patch_descriptors(textured(rng)) for _ in range(12)]
    calibration = [patch_descriptors(textured(rng)) for _ in range(8)]
    examples = [scratched(rng) for _ in range(20)]
    defects = [
        (g, patch_coverage(g, m)) for g, m in ((patch_descriptors(i), m) for i, m in examples)
    ]
    bank_only = fit_anomaly_model(good, calibration)
    with_head = fit_anomaly_model(good, calibration, defects=defects)
    assert bank_only.head is None and with_head.head is not None

    fresh = [patch_descriptors(textured(rng)) for _ in range(20)]
    fresh += [patch_descriptors(scratched(rng)[0]) for _ in range(20)]
    truth = [False] * 20 + [True] * 20

    def auroc(model: AnomalyModel) -> float:
        return float(roc_auc_score(truth, [model.judge(g)[0] for g in fresh]))

    assert auroc(bank_only) < 0.85
    assert auroc(with_head) > auroc(bank_only) + 0.1
    again = AnomalyModel.from_arrays(with_head.arrays())
    score, patches = with_head.judge(fresh[-1])
    assert again.judge(fresh[-1])[0] == score and np.array_equal(again.judge(fresh[-1])[1], patches)
