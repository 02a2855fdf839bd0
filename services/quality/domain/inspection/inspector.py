"""One inspection: pixels in, verdict + class probabilities + regions (+ a defect mask
for anomaly models) out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from services.quality.domain.inspection.anomaly import (
    PATCH,
    PATCH_FEATURE_VERSION,
    STRIDE,
    AnomalyModel,
    PatchGrid,
    patch_descriptors,
)
from services.quality.domain.inspection.artifacts import Manifest, read_artifact
from services.quality.domain.inspection.classifier import DefectClassifier
from services.quality.domain.inspection.features import FEATURE_VERSION, TextureFeatures
from services.quality.domain.inspection.regions import (
    Box,
    boxes_from_map,
    place_cells,
    texture_saliency,
)
from services.runtime.errors import FailedPrecondition

GOOD_CLASSES = frozenset({"good", "free", "ok"})
SALIENCY_THRESHOLD = 3.5


class Verdict(Enum):
    GOOD = "good"
    DEFECTIVE = "defective"


@dataclass(frozen=True)
class Inspection:
    verdict: Verdict
    defect_class: str  # empty for an anomaly model or a good part
    probabilities: dict[str, float]
    anomaly_score: float  # anomaly models only; 0 otherwise
    threshold: float  # anomaly models only
    boxes: list[Box]
    model_name: str
    model_version: str
    latency_s: float
    # Anomaly models only (they score the image patch by patch): 255 on pixels judged
    # defective, 0 elsewhere, the image's size; all 0 for a good part. None for a
    # classifier, which only places its verdict with boxes.
    mask: NDArray[np.uint8] | None = None


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    classifier: DefectClassifier | None = None
    anomaly: AnomalyModel | None = None
    directory: Path | None = None  # where it was loaded from; None while being trained

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


def load_model(directory: Path) -> LoadedModel:
    """A model version from disk, hash-verified (see ``artifacts.read_artifact``)."""
    manifest, arrays = read_artifact(directory)
    expected = {"classifier": FEATURE_VERSION, "anomaly": PATCH_FEATURE_VERSION}.get(manifest.kind)
    if manifest.feature_version != expected:
        raise FailedPrecondition(
            f"model {manifest.name} {manifest.version} was trained on features "
            f"{manifest.feature_version!r}; this build computes {expected!r}"
        )
    if manifest.kind == "classifier":
        return LoadedModel(
            manifest,
            classifier=DefectClassifier.from_arrays(manifest.classes, arrays),
            directory=directory,
        )
    if manifest.kind == "anomaly":
        return LoadedModel(manifest, anomaly=AnomalyModel.from_arrays(arrays), directory=directory)
    raise ValueError(f"unknown model kind {manifest.kind!r} in {directory}")


class Inspector:
    """Runs a loaded model on decoded grayscale images. Stateless apart from the feature
    extractor's precomputed kernels, so one instance serves every thread."""

    def __init__(self) -> None:
        self._features = TextureFeatures()

    def features(self, image: NDArray[np.uint8]) -> NDArray[np.float64]:
        return self._features(image)

    def inspect(self, model: LoadedModel, image: NDArray[np.uint8]) -> Inspection:
        started = time.perf_counter()
        height, width = image.shape
        if model.classifier is not None:
            probabilities = model.classifier.probabilities(self._features(image))[0]
            classes = model.classifier.classes
            best = classes[int(np.argmax(probabilities))]
            good = best in GOOD_CLASSES
            boxes = (
                []
                if good
                else boxes_from_map(
                    texture_saliency(image), SALIENCY_THRESHOLD, width=width, height=height
                )
            )
            return Inspection(
                verdict=Verdict.GOOD if good else Verdict.DEFECTIVE,
                defect_class="" if good else best,
                probabilities={c: float(p) for c, p in zip(classes, probabilities, strict=True)},
                anomaly_score=0.0,
                threshold=0.0,
                boxes=boxes,
                model_name=model.name,
                model_version=model.version,
                latency_s=time.perf_counter() - started,
            )
        if model.anomaly is None:
            raise ValueError(f"model {model.name} has nothing to run")
        return _judge_patches(model, model.anomaly, image, started)


def _judge_patches(
    model: LoadedModel, anomaly: AnomalyModel, image: NDArray[np.uint8], started: float
) -> Inspection:
    """The image score against the model's threshold; on a defective part the patches
    above the patch threshold, as boxes and as the pixel mask (all 0 on a good part, as
    its boxes are none)."""
    height, width = image.shape
    grid = patch_descriptors(image)
    score, scores = anomaly.judge(grid)
    defective = score > anomaly.image_threshold
    boxes: list[Box] = []
    mask = np.zeros((height, width), np.uint8)
    if defective:
        placed = _patch_map(grid, scores, width=width, height=height)
        boxes = boxes_from_map(placed, anomaly.patch_threshold, width=width, height=height)
        mask[placed > anomaly.patch_threshold] = 255
    return Inspection(
        verdict=Verdict.DEFECTIVE if defective else Verdict.GOOD,
        defect_class="",
        probabilities={},
        anomaly_score=score,
        threshold=anomaly.image_threshold,
        boxes=boxes,
        model_name=model.name,
        model_version=model.version,
        latency_s=time.perf_counter() - started,
        mask=mask,
    )


def _patch_map(
    grid: PatchGrid, scores: NDArray[np.float64], *, width: int, height: int
) -> NDArray[np.float64]:
    """Patch scores laid on the original pixels, where both the boxes and the mask are
    read. Patches overlap by PATCH - STRIDE; each cell of the score map stands for the
    STRIDE x STRIDE square at its patch's centre, so the cells tile the image from
    (PATCH - STRIDE) / 2 on. The thin border no cell covers is never defective."""
    return place_cells(
        scores.reshape(grid.rows, grid.cols),
        cell=STRIDE / grid.scale,
        offset=(PATCH - STRIDE) / 2 / grid.scale,
        width=width,
        height=height,
        outside=-np.inf,
    )
