"""The training command on a folder in the magnetic-tile layout: the defective images'
masks reach the defect head, and the model is written, evaluated and loadable."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from services.quality import train
from services.quality.domain.inspection.inspector import load_model
from tests.quality.test_defect_head import scratched, textured


def write_tiles(root: Path, rng: np.random.Generator) -> None:
    """Two capture groups of good parts and of scratched ones, with masks."""
    for group in (1, 2):
        for number in range(9):
            for label, (image, mask) in (
                ("free", (textured(rng), np.zeros((160, 160), bool))),
                ("scratch", scratched(rng)),
            ):
                if label == "scratch" and number >= 6:
                    continue
                stem = f"exp{group}_num_{number}"
                for kind, pixels in (("images", image), ("masks", mask.astype(np.uint8) * 255)):
                    (root / kind / label).mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(root / kind / label / f"{stem}.png"), pixels)


def test_tile_training_teaches_the_head_with_the_masks(tmp_path, capsys):
    write_tiles(tmp_path / "tiles", np.random.default_rng(5))
    out = tmp_path / "models"
    argv = ["--only", "tile", "--tile", str(tmp_path / "tiles"), "--out", str(out)]
    assert train.main([*argv, "--version", "t"]) == 0

    model = load_model(out / train.TILE_MODEL / "t")
    assert model.anomaly is not None and model.anomaly.head is not None
    training = model.manifest.training
    assert training["good_images"] == 12 and training["defect_images"] == 8  # 2/3 of each
    assert len(training["blocked_cv_auroc"]) == train.CV_FOLDS
    assert model.manifest.metrics["test_images"] == 10
    assert model.manifest.metrics["auroc"] > 0.8
    printed = capsys.readouterr().out
    assert json.loads(printed.split(": ", 1)[1])["auroc"] == model.manifest.metrics["auroc"]
