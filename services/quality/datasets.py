"""The two image data sets in their published folder layouts, with blocked splits.

NEU-DET (``images/<class>/<class>_<n>.jpg``): per class, by the number n, the first
``train_fraction`` of the images train and the rest test. Magnetic tile
(``images/<class>/exp<K>_num_<N>.jpg``): per class and capture group K, by N, likewise.
Neighbouring numbers are near-duplicates, so a contiguous block, never a random draw,
is held out (see the data READMEs).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
GOOD_TILE_CLASS = "free"
_NEU_NUMBER = re.compile(r"_(\d+)$")
_TILE_NAME = re.compile(r"^exp(\d+)_num_(\d+)$")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    group: str
    number: int

    def read(self) -> NDArray[Any]:
        image = cv2.imread(str(self.path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot read image {self.path}")
        return image

    def mask(self) -> NDArray[np.bool_] | None:
        """Defect pixels from ``<root>/masks/<label>/<stem>.png`` (the magnetic-tile
        layout), or None when the folder has no mask for this image."""
        path = self.path.parents[2] / "masks" / self.label / f"{self.path.stem}.png"
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
        return None if mask is None else mask > 127

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def neu_samples(root: Path) -> list[Sample]:
    samples = []
    for class_dir in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
        for path in _images(class_dir):
            match = _NEU_NUMBER.search(path.stem)
            if match:
                samples.append(Sample(path, class_dir.name, "", int(match.group(1))))
    if not samples:
        raise ValueError(f"no NEU images under {root / 'images'}")
    return samples


def tile_samples(root: Path) -> list[Sample]:
    samples = []
    for class_dir in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
        for path in _images(class_dir):
            match = _TILE_NAME.match(path.stem)
            if match:
                samples.append(
                    Sample(path, class_dir.name, f"exp{match.group(1)}", int(match.group(2)))
                )
    if not samples:
        raise ValueError(f"no magnetic-tile images under {root / 'images'}")
    return samples


def _blocks(samples: list[Sample]) -> list[list[Sample]]:
    """Per (label, group), the samples sorted by number."""
    blocks: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        blocks[(sample.label, sample.group)].append(sample)
    return [sorted(blocks[key], key=lambda s: s.number) for key in sorted(blocks)]


def blocked_split(
    samples: list[Sample], train_fraction: float
) -> tuple[list[Sample], list[Sample]]:
    """Per (label, group), sorted by number: the first block trains, the rest tests."""
    train, test = [], []
    for block in _blocks(samples):
        cut = round(train_fraction * len(block))
        train += block[:cut]
        test += block[cut:]
    return train, test


def blocked_folds(samples: list[Sample], folds: int) -> list[list[Sample]]:
    """Cross-validation folds that are contiguous runs of numbers within every
    (label, group): fold k holds the k-th of ``folds`` equal runs of each."""
    chosen: list[list[Sample]] = [[] for _ in range(folds)]
    for block in _blocks(samples):
        for index, sample in enumerate(block):
            chosen[index * folds // len(block)].append(sample)
    return chosen
