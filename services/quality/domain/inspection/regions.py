"""Defect regions: connected areas of a score map above a threshold, as boxes; a grid
of cell scores laid on the image's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

MAX_REGIONS = 16


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the original image, with the region's peak score."""

    x_min: int
    y_min: int
    x_max: int  # exclusive
    y_max: int  # exclusive
    score: float


def boxes_from_map(
    score_map: NDArray[np.float64], threshold: float, *, width: int, height: int
) -> list[Box]:
    """Boxes around connected cells of ``score_map`` above ``threshold``; the map covers
    the image (any resolution), boxes are in image pixels, highest score first."""
    mask = (score_map > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sy = height / score_map.shape[0]
    sx = width / score_map.shape[1]
    boxes = []
    for label in range(1, count):
        x, y, w, h, _area = (int(v) for v in stats[label])
        # Only the region's own box is searched: on a full-size map a whole-map pass per
        # region would cost more than finding the regions.
        inside = labels[y : y + h, x : x + w] == label
        peak = float(score_map[y : y + h, x : x + w][inside].max())
        boxes.append(
            Box(
                x_min=int(x * sx),
                y_min=int(y * sy),
                x_max=min(width, round((x + w) * sx)),
                y_max=min(height, round((y + h) * sy)),
                score=peak,
            )
        )
    boxes.sort(key=lambda box: -box.score)
    return boxes[:MAX_REGIONS]


def place_cells(
    cells: NDArray[np.float64],
    *,
    cell: float,
    offset: float,
    width: int,
    height: int,
    outside: float,
) -> NDArray[np.float64]:
    """A map of ``cells`` (rows, cols) at the image's size: cell (r, c) stands for the
    square of side ``cell`` pixels from (offset + c * cell, offset + r * cell); each pixel
    takes the cell holding its centre, and pixels no cell covers take ``outside``."""
    padded = np.full((cells.shape[0] + 1, cells.shape[1] + 1), outside, np.float64)
    padded[:-1, :-1] = cells  # the last row and column stand for "no cell"
    rows = _cell_of(height, cells.shape[0], cell, offset)
    cols = _cell_of(width, cells.shape[1], cell, offset)
    return padded[rows[:, None], cols[None, :]]


def _cell_of(pixels: int, cells: int, cell: float, offset: float) -> NDArray[np.intp]:
    index = np.floor((np.arange(pixels) + 0.5 - offset) / cell).astype(np.intp)
    return np.where((index >= 0) & (index < cells), index, cells)


def texture_saliency(image: NDArray[np.uint8], *, cell: int = 8) -> NDArray[np.float64]:
    """How far each cell's local texture (brightness and contrast) is from the image's
    typical cell, in robust z units; used to place a classified defect."""
    height, width = image.shape
    rows, cols = max(1, height // cell), max(1, width // cell)
    f = image.astype(np.float32)
    mean = cv2.resize(f, (cols, rows), interpolation=cv2.INTER_AREA)
    square = cv2.resize(f * f, (cols, rows), interpolation=cv2.INTER_AREA)
    contrast = np.sqrt(np.maximum(square - mean * mean, 0.0))
    scores = np.zeros((rows, cols))
    for local in (mean, contrast):
        smooth = cv2.GaussianBlur(local, (0, 0), 1.0).astype(np.float64)
        centre = np.median(smooth)
        spread = 1.4826 * np.median(np.abs(smooth - centre)) + 1e-6
        scores = np.maximum(scores, np.abs(smooth - centre) / spread)
    return scores
