"""Held-out evaluation of inspection models: accuracy, macro F1, confusion matrix, AUROC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from services.quality.datasets import GOOD_TILE_CLASS, Sample
from services.quality.domain.inspection.inspector import Inspector, LoadedModel
from services.quality.domain.inspection.regions import Box


@dataclass(frozen=True)
class ClassifierReport:
    accuracy: float
    macro_f1: float
    classes: tuple[str, ...]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    images: int

    def metrics(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "test_images": self.images,
            "confusion_matrix": {"classes": list(self.classes), "rows": self.confusion},
        }


@dataclass(frozen=True)
class AnomalyReport:
    auroc: float
    recall_at_threshold: float
    false_alarm_rate: float
    per_class_auroc: dict[str, float]
    images: int
    # Of the flagged defective images with a defect mask: share whose strongest box
    # touches the mask (None when the folder has no masks).
    box_hit_rate: float | None

    def metrics(self) -> dict[str, Any]:
        return {
            "auroc": round(self.auroc, 4),
            "box_hit_rate": None if self.box_hit_rate is None else round(self.box_hit_rate, 4),
            "recall_at_threshold": round(self.recall_at_threshold, 4),
            "false_alarm_rate": round(self.false_alarm_rate, 4),
            "per_class_auroc": {k: round(v, 4) for k, v in self.per_class_auroc.items()},
            "test_images": self.images,
        }


def evaluate_classifier(
    model: LoadedModel, samples: list[Sample], inspector: Inspector
) -> ClassifierReport:
    classifier = model.classifier
    if classifier is None:
        raise ValueError(f"{model.name} is not a classifier")
    features = np.stack([inspector.features(s.read()) for s in samples])
    predicted = [classifier.classes[i] for i in classifier.probabilities(features).argmax(axis=1)]
    truth = [s.label for s in samples]
    return ClassifierReport(
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, average="macro")),
        classes=classifier.classes,
        confusion=confusion_matrix(truth, predicted, labels=list(classifier.classes)).tolist(),
        images=len(samples),
    )


def evaluate_anomaly(
    model: LoadedModel, samples: list[Sample], inspector: Inspector
) -> AnomalyReport:
    results = [inspector.inspect(model, s.read()) for s in samples]
    scores = np.asarray([r.anomaly_score for r in results])
    defective = np.asarray([s.label != GOOD_TILE_CLASS for s in samples])
    flagged = np.asarray([r.verdict.value == "defective" for r in results])
    per_class = {}
    for label in sorted({s.label for s in samples} - {GOOD_TILE_CLASS}):
        chosen = np.asarray([s.label in (label, GOOD_TILE_CLASS) for s in samples])
        if defective[chosen].any() and (~defective[chosen]).any():
            per_class[label] = float(roc_auc_score(defective[chosen], scores[chosen]))
    hits = [
        _touches(result.boxes[0], mask)
        for sample, result in zip(samples, results, strict=True)
        if result.boxes and (mask := sample.mask()) is not None and mask.any()
    ]
    return AnomalyReport(
        auroc=float(roc_auc_score(defective, scores)),
        recall_at_threshold=float(flagged[defective].mean()),
        false_alarm_rate=float(flagged[~defective].mean()),
        per_class_auroc=per_class,
        images=len(samples),
        box_hit_rate=float(np.mean(hits)) if hits else None,
    )


def _touches(box: Box, mask: NDArray[np.bool_]) -> bool:
    return bool(mask[box.y_min : box.y_max, box.x_min : box.x_max].any())
