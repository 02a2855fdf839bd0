"""Training a new classifier version from labelled images sent by a caller.

The held-out part is, per label, the last third of that label's images in the order
they arrived (at least one image): camera frames in sequence are near-duplicates, so a
random split would flatter the model. The version is written under the registry's
trained folder and stays inactive until promoted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from services.quality.domain.inspection.artifacts import Manifest, sha256_bytes, write_artifact
from services.quality.domain.inspection.classifier import fit_classifier
from services.quality.domain.inspection.features import FEATURE_VERSION
from services.runtime.errors import FieldViolation, InvalidArgument

MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
LABEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_IMAGES = 5000
MIN_PER_LABEL = 3


@dataclass(frozen=True)
class TrainingResult:
    manifest: Manifest
    directory: Path
    labels: tuple[str, ...]
    confusion: list[list[int]]


def train_classifier_version(
    *,
    name: str,
    features: list[NDArray[np.float64]],
    labels: list[str],
    image_hashes: list[str],
    out: Path,
    now: datetime,
) -> TrainingResult:
    counts: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        counts[label].append(index)
    enough = [label for label, idx in counts.items() if len(idx) >= MIN_PER_LABEL]
    if len(enough) < 2 or len(enough) != len(counts):
        raise InvalidArgument(
            [
                FieldViolation(
                    "requests",
                    f"need at least two labels with {MIN_PER_LABEL}+ images each; got "
                    + ", ".join(f"{k}: {len(v)}" for k, v in sorted(counts.items())),
                )
            ]
        )
    train_idx, test_idx = [], []
    for indices in counts.values():
        held = max(1, len(indices) // 3)
        train_idx += indices[:-held]
        test_idx += indices[-held:]
    x = np.stack(features)
    classifier = fit_classifier(x[train_idx], [labels[i] for i in train_idx])
    probabilities = classifier.probabilities(x[test_idx])
    predicted = [classifier.classes[i] for i in probabilities.argmax(axis=1)]
    truth = [labels[i] for i in test_idx]
    confusion = confusion_matrix(truth, predicted, labels=list(classifier.classes)).tolist()
    version = now.strftime("%Y%m%dT%H%M%S%fZ")
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "kind": "classifier",
        "created": now.replace(microsecond=0).isoformat(),
        "feature_version": FEATURE_VERSION,
        "classes": classifier.classes,
        "data_fingerprint": sha256_bytes("\n".join(sorted(image_hashes)).encode()),
        "metrics": {
            "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
            "test_images": len(test_idx),
            "confusion_matrix": {"classes": list(classifier.classes), "rows": confusion},
        },
        "training": {"images": len(train_idx), "split": "per label last third held out"},
    }
    manifest = write_artifact(out, fields, classifier.arrays())
    return TrainingResult(manifest, out / name / version, classifier.classes, confusion)
