"""Train the default inspection models from the public data sets, reproducibly.

    python -m services.quality.train [--neu DIR] [--tile DIR] [--out DIR] [--version V]

Writes ``<out>/neu-surface/<V>/`` (six-class defect classifier) and
``<out>/magnetic-tile/<V>/`` (anomaly model: a bank of good patches and a defect head),
each a ``model.npz`` plus a ``manifest.json`` holding its sha256, the training-data
fingerprint and the metrics on the held-out block (per class, and for tiles per capture
group, the last third by file number; see services/quality/datasets.py). The tile
manifest also records the AUROC of blocked cross-validation inside the training part,
the only figure its settings (patch layout, local maps, edge handling, per-place
scaling, defect head, image score) were chosen by. The same inputs give the same arrays.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from services.quality.datasets import (
    GOOD_TILE_CLASS,
    Sample,
    blocked_folds,
    blocked_split,
    neu_samples,
    tile_samples,
)
from services.quality.domain.inspection.anomaly import (
    PATCH_FEATURE_VERSION,
    AnomalyModel,
    PatchGrid,
    fit_anomaly_model,
    patch_coverage,
    patch_descriptors,
)
from services.quality.domain.inspection.artifacts import fingerprint, write_artifact
from services.quality.domain.inspection.classifier import fit_classifier
from services.quality.domain.inspection.features import FEATURE_VERSION
from services.quality.domain.inspection.inspector import Inspector, LoadedModel, load_model
from services.quality.evaluation import evaluate_anomaly, evaluate_classifier

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_OUT = Path(__file__).resolve().parent / "models"
NEU_MODEL = "neu-surface"
TILE_MODEL = "magnetic-tile"
TRAIN_FRACTION = 2 / 3
CALIBRATION_FRACTION = 0.25  # of each good training block, kept out of the kNN bank
CV_FOLDS = 3


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _fingerprint(samples: list[Sample], root: Path) -> str:
    return fingerprint([(str(s.path.relative_to(root)), s.sha256()) for s in samples])


def train_neu(root: Path, out: Path, version: str) -> LoadedModel:
    train, test = blocked_split(neu_samples(root), TRAIN_FRACTION)
    inspector = Inspector()
    features = np.stack([inspector.features(s.read()) for s in train])
    classifier = fit_classifier(features, [s.label for s in train])
    fields: dict[str, Any] = {
        "name": NEU_MODEL,
        "version": version,
        "kind": "classifier",
        "created": _now(),
        "feature_version": FEATURE_VERSION,
        "classes": classifier.classes,
        "data_fingerprint": _fingerprint(train, root),
        "metrics": {},
        "training": {"images": len(train), "split": "per class first 2/3 by file number"},
    }
    staging = LoadedModel(_manifest_stub(fields), classifier=classifier)
    fields["metrics"] = evaluate_classifier(staging, test, inspector).metrics()
    write_artifact(out, fields, classifier.arrays())
    return load_model(out / NEU_MODEL / version)


@dataclass(frozen=True)
class _TileGrids:
    """Patch grids of the training images, of the good ones mirrored left to right (the
    tiles are symmetric, so a mirrored good part is a good part, and the mirror doubles
    the examples of each image edge in the bank), and of each defective one with a mask,
    how much of every patch the mask covers."""

    plain: dict[Path, PatchGrid]
    mirrored: dict[Path, PatchGrid]
    coverage: dict[Path, NDArray[np.float64]]

    @classmethod
    def of(cls, train: list[Sample]) -> _TileGrids:
        images = {s.path: s.read() for s in train}
        plain = {path: patch_descriptors(image) for path, image in images.items()}
        good = [s.path for s in train if s.label == GOOD_TILE_CLASS]
        masks = {s.path: s.mask() for s in train if s.label != GOOD_TILE_CLASS}
        return cls(
            plain,
            {path: patch_descriptors(cv2.flip(images[path], 1)) for path in good},
            {p: patch_coverage(plain[p], mask) for p, mask in masks.items() if mask is not None},
        )


def _fit_tile(train: list[Sample], grids: _TileGrids) -> AnomalyModel:
    """Good parts of ``train``: the first blocks (and their mirror images) fill the bank
    and teach the defect head what good looks like, the last CALIBRATION_FRACTION of
    each block sets the thresholds; the defective parts with masks teach the head what
    defects look like."""
    good = [s for s in train if s.label == GOOD_TILE_CLASS]
    bank_part, calibration_part = blocked_split(good, 1 - CALIBRATION_FRACTION)
    bank = [grids.plain[s.path] for s in bank_part] + [grids.mirrored[s.path] for s in bank_part]
    defects = [(grids.plain[s.path], grids.coverage[s.path]) for s in _masked(train, grids)]
    return fit_anomaly_model(bank, [grids.plain[s.path] for s in calibration_part], defects=defects)


def _masked(train: list[Sample], grids: _TileGrids) -> list[Sample]:
    return [s for s in train if s.path in grids.coverage]


def _cross_validated_auroc(train: list[Sample], grids: _TileGrids) -> list[float]:
    """Blocked CV inside the training part (how the model's settings were chosen):
    each fold, a contiguous run of every class and group, is judged by a model fitted
    on the good parts of the other folds."""
    scores = []
    folds = blocked_folds(train, CV_FOLDS)
    for index, held in enumerate(folds):
        rest = [s for k, fold in enumerate(folds) if k != index for s in fold]
        model = _fit_tile(rest, grids)
        judged = [model.judge(grids.plain[s.path])[0] for s in held]
        truth = [s.label != GOOD_TILE_CLASS for s in held]
        scores.append(round(float(roc_auc_score(truth, judged)), 4))
    return scores


def train_tile(root: Path, out: Path, version: str) -> LoadedModel:
    train, test = blocked_split(tile_samples(root), TRAIN_FRACTION)
    grids = _TileGrids.of(train)
    anomaly = _fit_tile(train, grids)
    good = [s for s in train if s.label == GOOD_TILE_CLASS]
    masked = _masked(train, grids)
    fields: dict[str, Any] = {
        "name": TILE_MODEL,
        "version": version,
        "kind": "anomaly",
        "created": _now(),
        "feature_version": PATCH_FEATURE_VERSION,
        "classes": (),
        "data_fingerprint": _fingerprint(good + masked, root),
        "metrics": {},
        "training": {
            "good_images": len(good),
            "defect_images": len(masked),
            "split": "per class and capture group first 2/3 by file number",
            "blocked_cv_auroc": _cross_validated_auroc(train, grids),
        },
    }
    staging = LoadedModel(_manifest_stub(fields), anomaly=anomaly)
    fields["metrics"] = evaluate_anomaly(staging, test, Inspector()).metrics()
    write_artifact(out, fields, anomaly.arrays())
    return load_model(out / TILE_MODEL / version)


def _manifest_stub(fields: dict[str, Any]) -> Any:
    from services.quality.domain.inspection.artifacts import Manifest

    return Manifest(**fields, files={})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neu", type=Path, default=SHARED_DATA / "neu_det")
    parser.add_argument("--tile", type=Path, default=SHARED_DATA / "magnetic_tile")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--version", default="1")
    parser.add_argument("--only", choices=("neu", "tile"))
    args = parser.parse_args(argv)
    trained = []
    if args.only in (None, "neu"):
        trained.append(train_neu(args.neu, args.out, args.version))
    if args.only in (None, "tile"):
        trained.append(train_tile(args.tile, args.out, args.version))
    for model in trained:
        summary = {k: v for k, v in model.manifest.metrics.items() if k != "confusion_matrix"}
        sys.stdout.write(f"{model.name} {model.version}: {json.dumps(summary)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
