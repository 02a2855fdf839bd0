"""Reading the pictures the CLI writes: opened, measured, and looked at by colour."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

GANTT_WIDTH = 1200  # services/scheduling/gantt.py
CHART_PANEL = (420, 1000)  # height, width of one statistic (services/quality/domain)
CHART_PLOT = (slice(40, 380), slice(70, 980))  # inside a panel's frame


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} does not decode"
    return image


def colourful(image: np.ndarray, spread: int = 60) -> np.ndarray:
    """Pixels that are clearly not grey (largest minus smallest channel)."""
    channels = image.astype(np.int16)
    return (channels.max(axis=2) - channels.min(axis=2)) > spread


def red(image: np.ndarray) -> np.ndarray:
    blue, green, red_ = (image[:, :, i].astype(np.int16) for i in range(3))
    return (red_ > 180) & (blue < 90) & (green < 90)


def chart_points(image: np.ndarray) -> np.ndarray:
    """The blue of plotted points and their connecting line (BGR 180, 90, 30)."""
    blue, green, red_ = (image[:, :, i].astype(np.int16) for i in range(3))
    return (blue > 140) & (red_ < 80) & (green < 130)
