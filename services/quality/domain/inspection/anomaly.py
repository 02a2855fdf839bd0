"""Anomaly model for surface images: patch descriptors, nearest good patch, defect head.

Every image is scaled to a fixed height and cut into overlapping square patches (half a
patch apart, so a small defect is never split across patch borders). Each patch is
described by pooled statistics (mean, max, min, spread) of a few local maps: the
illumination-normalised residual, dark/bright blob and line strength (Hessian
eigenvalues at three scales), gradient magnitude and its horizontal and vertical parts,
a difference of Gaussians (blobs and streaks a few pixels wide against their
surroundings), and brightness. Training keeps a bank of descriptors from good parts
only, thinned to a coreset (greedy farthest points) that keeps the rare kinds of good
texture. A patch's anomaly score comes from its distance to the nearest good patch; the
score map locates the defect.

Where a patch sits matters: the image edges are where the crop meets the part's edges,
and they look unlike the middle. Each patch therefore carries flags for the image edge
it touches, weighted so heavily that its neighbours always come from good patches at
the same edge. Good parts vary more at the edges than in the middle, so a patch's
distance is divided by the median distance of good calibration patches at the same place
(middle, one edge, or a corner): a score of 1 is ordinary there. The image score is the
mean of the worst patches except the four corner patches.

Where labelled defects with pixel masks are at hand, a supervised head joins the good
bank: gradient-boosted trees on the same descriptors, trained to tell the patches inside
the masks from good patches. Its log-odds are pooled like the distances (over fewer
worst patches: a defect covers few), each of the two image-level terms is standardised
by its mean and spread over the good calibration parts, and the two are summed; the
patch map is summed likewise. The good bank's term stays, so a kind of defect the head
never saw counts as much as before. These choices were made by blocked cross-validation
on the training part only (see services/quality/train.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier

from services.runtime.trees import TreeEnsemble

FloatArray = NDArray[np.float64]
PATCH_FEATURE_VERSION = "patch-v5"  # v5: difference of Gaussians; distances per place
HEIGHT = 224
PATCH = 24
STRIDE = 12
WORST_PATCHES = 8
HEAD_WORST_PATCHES = 4
HEAD_DEFECT_COVERAGE = 0.1  # a patch this much inside a defect mask teaches the head "defect"
HEAD_TREES = 200
HESSIAN_SIGMAS = (1.5, 3.0, 6.0)
DOG_SIGMAS = (3.0, 12.0)
EDGE_WEIGHT = 50.0  # in standardised units: far beyond any texture difference
EDGE_FLAGS = 4  # top, bottom, left, right
PLACES = 1 << EDGE_FLAGS  # a patch's place: which edges it touches, one bit each


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
    maps += [np.abs(gx) / spread, np.abs(gy) / spread]
    contrast = float(image.std()) + 1.0
    fine, coarse = (cv2.GaussianBlur(image, (0, 0), sigma) for sigma in DOG_SIGMAS)
    maps.append(np.subtract(fine, coarse) / contrast)
    maps.append((image - float(image.mean())) / contrast)
    return maps


_WINDOW = np.ones((PATCH, PATCH), np.uint8)


def _window_centres(rows: int, cols: int) -> tuple[NDArray[np.intp], ...]:
    centres_y = np.arange(rows) * STRIDE + PATCH // 2
    centres_x = np.arange(cols) * STRIDE + PATCH // 2
    return np.ix_(centres_y, centres_x)


def _window_means(local: NDArray[Any], at: tuple[NDArray[np.intp], ...]) -> NDArray[Any]:
    return cv2.blur(local, (PATCH, PATCH), borderType=cv2.BORDER_REFLECT)[at]


def _pooled(local: NDArray[Any], rows: int, cols: int) -> list[NDArray[Any]]:
    """Mean, max, min and spread of every PATCH x PATCH window starting at multiples of
    STRIDE: sliding filters sampled at the windows' centres (even kernels centre at
    PATCH // 2, so the window starting at y covers y .. y + PATCH - 1)."""
    at = _window_centres(rows, cols)
    mean = _window_means(local, at)
    square = _window_means(local * local, at)
    # OpenCV centres even morphology kernels at PATCH // 2 too; erode/dilate pick min/max.
    high = cv2.dilate(local, _WINDOW)[at]
    low = cv2.erode(local, _WINDOW)[at]
    return [mean, high, low, np.sqrt(np.maximum(square - mean * mean, 0.0))]


def _edges(rows: int, cols: int) -> NDArray[np.bool_]:
    """Per patch (row-major), whether it touches the top, bottom, left, right edge."""
    row, col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    flags = np.stack([row == 0, row == rows - 1, col == 0, col == cols - 1], axis=-1)
    return flags.reshape(rows * cols, EDGE_FLAGS)


def _edge_flags(rows: int, cols: int) -> NDArray[Any]:
    return _edges(rows, cols).astype(np.float32) * EDGE_WEIGHT


@dataclass(frozen=True)
class PatchGrid:
    """Patch descriptors of one image and how the grid maps back to its pixels."""

    descriptors: NDArray[Any]  # (rows * cols, features), edge flags last
    rows: int
    cols: int
    scale: float  # resized / original

    def places(self) -> NDArray[np.intp]:
        """Per patch, its place in 0 .. PLACES - 1 (0: the middle; one bit per edge)."""
        return np.asarray(_edges(self.rows, self.cols) @ (1 << np.arange(EDGE_FLAGS)), np.intp)

    def corners(self) -> NDArray[np.intp]:
        last_row = (self.rows - 1) * self.cols
        return np.unique([0, self.cols - 1, last_row, last_row + self.cols - 1])


def _resized(image: NDArray[Any]) -> NDArray[Any]:
    width = max(PATCH, round(image.shape[1] * HEIGHT / image.shape[0]))
    return cv2.resize(image, (width, HEIGHT), interpolation=cv2.INTER_AREA)


def patch_descriptors(image: NDArray[Any]) -> PatchGrid:
    resized = _resized(image)
    scale = HEIGHT / image.shape[0]
    rows, cols = (HEIGHT - PATCH) // STRIDE + 1, (resized.shape[1] - PATCH) // STRIDE + 1
    pooled = []
    for local in _local_maps(resized.astype(np.float32)):
        pooled += _pooled(local, rows, cols)
    texture = np.stack(pooled, axis=-1).reshape(rows * cols, -1)
    descriptors = np.concatenate([texture, _edge_flags(rows, cols)], axis=1)
    return PatchGrid(descriptors.astype(np.float32), rows, cols, scale)


def patch_coverage(grid: PatchGrid, mask: NDArray[np.bool_]) -> FloatArray:
    """Per patch of ``grid`` (row-major), the share of its pixels inside ``mask``, the
    defect pixels of the image the grid was cut from."""
    inside = _resized(mask.astype(np.float32))
    if (inside.shape[1] - PATCH) // STRIDE + 1 != grid.cols:
        raise ValueError(f"a mask of {mask.shape} is not cut into this grid's patches")
    return np.asarray(
        _window_means(inside, _window_centres(grid.rows, grid.cols)).reshape(-1), np.float64
    )


@dataclass(frozen=True)
class AnomalyModel:
    """Nearest good patch over a bank of good-patch descriptors (standardised), its
    distance relative to what good parts show at the same place; optionally a supervised
    defect head on the same descriptors."""

    mean: NDArray[Any]
    scale: NDArray[Any]
    bank: NDArray[Any]  # standardised good descriptors
    place_scale: NDArray[Any]  # (PLACES,) median nearest distance of good patches per place
    image_threshold: float  # image score above this -> defective
    patch_threshold: float  # patch score above this -> part of a defect region
    head: TreeEnsemble | None = None  # log-odds that a patch is a defect
    # With a head: mean and spread of the distance term and of the head term of the
    # image score over good calibration parts (the scale each term is counted in).
    term_scale: NDArray[Any] = field(default_factory=lambda: np.asarray([0.0, 1.0, 0.0, 1.0]))

    def nearest_distances(self, grid: PatchGrid) -> FloatArray:
        query = (grid.descriptors - self.mean) / self.scale
        distances = (
            (query * query).sum(axis=1)[:, None]
            + (self.bank * self.bank).sum(axis=1)[None, :]
            - 2.0 * query @ self.bank.T
        )
        nearest = distances.min(axis=1)
        return np.asarray(np.sqrt(np.maximum(nearest, 0.0)), dtype=np.float64)

    def relative_distances(self, grid: PatchGrid) -> FloatArray:
        scale = self.place_scale[grid.places()]
        return np.asarray(self.nearest_distances(grid) / scale, dtype=np.float64)

    def judge(self, grid: PatchGrid) -> tuple[float, FloatArray]:
        """The image score and the per-patch scores defect regions are read from."""
        distances = self.relative_distances(grid)
        if self.head is None:
            return AnomalyModel.image_score(grid, distances), distances
        defect = self.head.predict_raw(grid.descriptors)
        mean_d, spread_d, mean_h, spread_h = (float(v) for v in self.term_scale)
        image = (AnomalyModel.image_score(grid, distances) - mean_d) / spread_d + (
            AnomalyModel.image_score(grid, defect, HEAD_WORST_PATCHES) - mean_h
        ) / spread_h
        return image, (distances - mean_d) / spread_d + (defect - mean_h) / spread_h

    @staticmethod
    def image_score(grid: PatchGrid, patch_scores: FloatArray, worst: int = WORST_PATCHES) -> float:
        """Mean of the ``worst`` highest patch scores, the four corner patches left out."""
        judged = (
            np.delete(patch_scores, grid.corners()) if grid.rows * grid.cols > 4 else patch_scores
        )
        return float(np.sort(judged)[-worst:].mean())

    def arrays(self) -> dict[str, NDArray[Any]]:
        head = {} if self.head is None else self.head.to_arrays("head")
        return {
            "mean": self.mean,
            "scale": self.scale,
            "bank": self.bank,
            "place_scale": self.place_scale,
            "thresholds": np.asarray([self.image_threshold, self.patch_threshold], np.float32),
            "term_scale": self.term_scale,
            **head,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]]) -> AnomalyModel:
        image_threshold, patch_threshold = (float(v) for v in arrays["thresholds"])
        # Models saved before the defect head have neither a head nor its term scale.
        optional = {"term_scale": arrays["term_scale"]} if "term_scale" in arrays else {}
        return cls(
            arrays["mean"],
            arrays["scale"],
            arrays["bank"],
            arrays["place_scale"],
            image_threshold,
            patch_threshold,
            TreeEnsemble.from_arrays(arrays, "head") if "head.roots" in arrays else None,
            **optional,
        )


def coreset(points: NDArray[Any], size: int, *, seed: int = 0) -> NDArray[np.intp]:
    """Indices of ``size`` points chosen greedily, each the farthest from those chosen
    so far (k-center): unlike a random draw it keeps rare kinds of good texture."""
    if size >= len(points):
        return np.arange(len(points))
    squares = (points * points).sum(axis=1)
    chosen = np.empty(size, dtype=np.intp)
    chosen[0] = np.random.default_rng(seed).integers(len(points))
    nearest = np.full(len(points), np.inf, dtype=points.dtype)
    for index in range(size):
        if index:
            chosen[index] = int(nearest.argmax())
        latest = chosen[index]
        # |x - p|^2 = |x|^2 - 2 x.p + |p|^2: one matrix-vector product per step.
        distances = squares - 2.0 * (points @ points[latest]) + squares[latest]
        np.minimum(nearest, distances, out=nearest)
    return np.sort(chosen)


def fit_anomaly_model(
    good_grids: list[PatchGrid],
    calibration_grids: list[PatchGrid],
    *,
    defects: Sequence[tuple[PatchGrid, FloatArray]] = (),
    bank_size: int = 10000,  # a coreset this size judged as well as all patches in CV
    seed: int = 0,
    false_alarm_rate: float = 0.10,
) -> AnomalyModel:
    """Bank from ``good_grids``; the per-place distance scale and the thresholds from
    held-apart good images (``calibration_grids``) so they are not scored against
    themselves. With ``defects`` (grids of defective images and each patch's coverage
    by the defect mask, see ``patch_coverage``), a defect head too."""
    if not good_grids or not calibration_grids:
        raise ValueError("an anomaly model needs good images for its bank and for calibration")
    descriptors = np.concatenate([g.descriptors for g in good_grids]).astype(np.float64)
    mean = descriptors.mean(axis=0)
    scale = descriptors.std(axis=0) + 1e-6
    # Edge flags stay as they are: their weight is what keeps neighbours at the same edge.
    mean[-EDGE_FLAGS:], scale[-EDGE_FLAGS:] = 0.0, 1.0
    standardised = ((descriptors - mean) / scale).astype(np.float32)
    bank = standardised[coreset(standardised, bank_size, seed=seed)]
    unscaled = AnomalyModel(
        mean.astype(np.float32), scale.astype(np.float32), bank, np.ones(PLACES), 0.0, 0.0
    )
    model = replace(unscaled, place_scale=_place_scale(unscaled, calibration_grids))
    if defects:
        model = _with_head(model, descriptors, defects, calibration_grids, seed)
    judged = [model.judge(g) for g in calibration_grids]
    all_patches = np.concatenate([patches for _, patches in judged])
    return replace(
        model,
        image_threshold=float(np.quantile([score for score, _ in judged], 1 - false_alarm_rate)),
        patch_threshold=float(np.quantile(all_patches, 0.999)),
    )


def _with_head(
    model: AnomalyModel,
    good: NDArray[Any],
    defects: Sequence[tuple[PatchGrid, FloatArray]],
    calibration_grids: list[PatchGrid],
    seed: int,
) -> AnomalyModel:
    """Trees telling the patches well inside a defect mask from good patches (the good
    images' and the defect-free ones of defective images; those partly inside are left
    out), with each image-level term's scale over the calibration parts."""
    samples, labels = [good], [np.zeros(len(good), bool)]
    for grid, coverage in defects:
        clear = (coverage > HEAD_DEFECT_COVERAGE) | (coverage == 0)
        samples.append(grid.descriptors[clear])
        labels.append(coverage[clear] > HEAD_DEFECT_COVERAGE)
    trees = HistGradientBoostingClassifier(
        max_iter=HEAD_TREES, class_weight="balanced", early_stopping=False, random_state=seed
    ).fit(np.concatenate(samples), np.concatenate(labels))
    head = TreeEnsemble.from_sklearn(trees)
    distance_terms = [
        AnomalyModel.image_score(g, model.relative_distances(g)) for g in calibration_grids
    ]
    head_terms = [
        AnomalyModel.image_score(g, head.predict_raw(g.descriptors), HEAD_WORST_PATCHES)
        for g in calibration_grids
    ]
    term_scale = [np.mean(distance_terms), max(float(np.std(distance_terms)), 1e-6)]
    term_scale += [np.mean(head_terms), max(float(np.std(head_terms)), 1e-6)]
    return replace(model, head=head, term_scale=np.asarray(term_scale))


def _place_scale(model: AnomalyModel, grids: list[PatchGrid]) -> NDArray[np.float32]:
    """Median nearest distance of the good patches at each place (the median, so a few
    odd calibration patches do not set it); a place no calibration patch holds (a grid
    one patch wide) takes the median over all places."""
    distances = np.concatenate([model.nearest_distances(g) for g in grids])
    places = np.concatenate([g.places() for g in grids])
    scale = np.full(PLACES, np.median(distances) if len(distances) else 1.0)
    for place in np.unique(places):
        scale[place] = np.median(distances[places == place])
    return np.asarray(np.maximum(scale, 1e-6), dtype=np.float32)
