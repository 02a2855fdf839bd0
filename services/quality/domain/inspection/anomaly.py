"""Good-only anomaly model for surface images: patch descriptors + kNN density.

Every image is scaled to a fixed height and cut into square patches. Each patch is
described by pooled statistics (mean, max, min, spread) of a few local maps: the
illumination-normalised residual, dark/bright blob and line strength (Hessian
eigenvalues at three scales), gradient magnitude and brightness. Training keeps a bank
of descriptors from good parts only; a patch's anomaly score is its mean distance to
its nearest good neighbours, so the score map locates the defect and the image score
is the mean of its worst patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
PATCH_FEATURE_VERSION = "patch-v2"
HEIGHT = 224
PATCH = 24  # chosen on a validation split (training-block defects vs held-apart good parts)
NEIGHBOURS = 3
WORST_PATCHES = 3
HESSIAN_SIGMAS = (1.5, 3.0, 6.0)


def _local_maps(image: NDArray[Any]) -> list[NDArray[Any]]:
    background = cv2.GaussianBlur(image, (0, 0), 12)
    residual = image - background
    spread = np.sqrt(cv2.GaussianBlur(residual * residual, (0, 0), 24)) + 2.0
    maps = [residual / spread]
    for sigma in HESSIAN_SIGMAS:
        smooth = cv2.GaussianBlur(image, (0, 0), sigma)
        dxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0)
        dyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2)
        dxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1)
        trace = dxx + dyy
        root = np.sqrt((dxx - dyy) ** 2 + 4 * dxy**2)
        scale = sigma * sigma
        maps += [scale * (trace + root) / (2 * spread), scale * (trace - root) / (2 * spread)]
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1)
    maps.append(cv2.magnitude(gx, gy) / spread)
    maps.append((image - float(image.mean())) / (float(image.std()) + 1.0))
    return maps


@dataclass(frozen=True)
class PatchGrid:
    """Patch descriptors of one image and how the grid maps back to its pixels."""

    descriptors: NDArray[Any]  # (rows * cols, features)
    rows: int
    cols: int
    scale: float  # resized / original


def patch_descriptors(image: NDArray[Any]) -> PatchGrid:
    scale = HEIGHT / image.shape[0]
    width = max(PATCH, round(image.shape[1] * scale))
    resized = cv2.resize(image, (width, HEIGHT), interpolation=cv2.INTER_AREA)
    maps = _local_maps(resized.astype(np.float32))
    rows, cols = HEIGHT // PATCH, width // PATCH
    pooled = []
    for local in maps:
        blocks = local[: rows * PATCH, : cols * PATCH].reshape(rows, PATCH, cols, PATCH)
        pooled += [
            blocks.mean(axis=(1, 3)),
            blocks.max(axis=(1, 3)),
            blocks.min(axis=(1, 3)),
            blocks.std(axis=(1, 3)),
        ]
    descriptors = np.stack(pooled, axis=-1).reshape(rows * cols, -1).astype(np.float32)
    return PatchGrid(descriptors, rows, cols, scale)


@dataclass(frozen=True)
class AnomalyModel:
    """kNN density over a bank of good-patch descriptors (standardised)."""

    mean: NDArray[Any]
    scale: NDArray[Any]
    bank: NDArray[Any]  # standardised good descriptors
    image_threshold: float  # image score above this -> defective
    patch_threshold: float  # patch score above this -> part of a defect region

    def patch_scores(self, grid: PatchGrid) -> FloatArray:
        query = (grid.descriptors - self.mean) / self.scale
        distances = (
            (query * query).sum(axis=1)[:, None]
            + (self.bank * self.bank).sum(axis=1)[None, :]
            - 2.0 * query @ self.bank.T
        )
        nearest = np.partition(distances, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        return np.asarray(np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1), dtype=np.float64)

    @staticmethod
    def image_score(patch_scores: FloatArray) -> float:
        worst = np.sort(patch_scores)[-WORST_PATCHES:]
        return float(worst.mean())

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "mean": self.mean,
            "scale": self.scale,
            "bank": self.bank,
            "thresholds": np.asarray([self.image_threshold, self.patch_threshold], np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]]) -> AnomalyModel:
        image_threshold, patch_threshold = (float(v) for v in arrays["thresholds"])
        return cls(
            arrays["mean"], arrays["scale"], arrays["bank"], image_threshold, patch_threshold
        )


def fit_anomaly_model(
    good_grids: list[PatchGrid],
    calibration_grids: list[PatchGrid],
    *,
    bank_size: int = 12000,
    seed: int = 0,
    false_alarm_rate: float = 0.10,
) -> AnomalyModel:
    """Bank from ``good_grids``; thresholds from held-apart good images
    (``calibration_grids``) so they are not scored against themselves."""
    descriptors = np.concatenate([g.descriptors for g in good_grids]).astype(np.float64)
    mean = descriptors.mean(axis=0)
    scale = descriptors.std(axis=0) + 1e-6
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(descriptors), size=min(bank_size, len(descriptors)), replace=False)
    bank = ((descriptors[np.sort(chosen)] - mean) / scale).astype(np.float32)
    model = AnomalyModel(mean.astype(np.float32), scale.astype(np.float32), bank, 0.0, 0.0)
    patch_scores = [model.patch_scores(g) for g in calibration_grids]
    image_scores = [AnomalyModel.image_score(s) for s in patch_scores]
    all_patches = np.concatenate(patch_scores)
    return AnomalyModel(
        model.mean,
        model.scale,
        model.bank,
        float(np.quantile(image_scores, 1 - false_alarm_rate)),
        float(np.quantile(all_patches, 0.999)),
    )
