"""Pictures from the command line: files are written and show what they claim."""

from __future__ import annotations

import cv2
import numpy as np

from services.quality import picture
from tests.quality.test_spc_domain import JUICE


def test_chart_picture_marks_flagged_points(tmp_path):
    source = tmp_path / "juice.csv"
    source.write_text("\n".join(f"{c},50" for c in JUICE))
    out = tmp_path / "p.png"
    assert picture.main(["chart", "--type", "p", "--csv", str(source), "--out", str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] == 1000
    red = (image[:, :, 2] > 180) & (image[:, :, 0] < 80) & (image[:, :, 1] < 80)
    assert red.sum() > 100  # limits and the circled samples 15 and 23


def test_inspection_overlay_draws_regions(tmp_path):
    rng = np.random.default_rng(3)
    part = np.clip(rng.normal(120, 5, (200, 200)), 0, 255).astype(np.uint8)
    part[80:120, 60:140] = 250  # a bright patch
    source = tmp_path / "part.png"
    cv2.imwrite(str(source), part)
    out = tmp_path / "overlay.png"
    args = ["inspect", "--image", str(source), "--model", "neu-surface", "--out", str(out)]
    assert picture.main(args) == 0
    overlay = cv2.imread(str(out))
    assert overlay is not None
    assert overlay.shape[:2] == (400, 400)  # small parts are enlarged
    red = (overlay[:, :, 2] > 180) & (overlay[:, :, 0] < 80)
    assert red[40:, :].sum() > 50  # a box below the caption
