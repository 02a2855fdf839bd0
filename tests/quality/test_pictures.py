"""Pictures from the command line: files are written and show what they claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from services.quality import picture
from services.quality.datasets import Sample, tile_samples
from services.quality.domain.inspection.inspector import Inspection, Inspector, Verdict
from services.quality.domain.inspection.regions import Box
from services.quality.domain.pictures import inspection_overlay
from services.quality.registry import SHIPPED_MODELS, ModelRegistry, memory_activations
from tests.quality.test_spc_domain import JUICE
from tests.shared_data import shared_data


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


def tinted(image: np.ndarray) -> np.ndarray:
    """Pixels no longer grey: the mask's translucent fill, box outlines, the caption."""
    channels = image.astype(np.int16)
    return (channels.max(axis=2) - channels.min(axis=2)) > 40


def test_inspection_overlay_fills_the_mask_and_leaves_the_rest_grey():
    rng = np.random.default_rng(5)
    part = np.clip(rng.normal(120, 30, (100, 100)), 0, 255).astype(np.uint8)
    mask = np.zeros_like(part)
    mask[50:70, 30:60] = 255
    mask[85:90, 5:8] = 255  # a speck outside every box is filled too
    inspection = Inspection(
        verdict=Verdict.DEFECTIVE,
        defect_class="",
        probabilities={},
        anomaly_score=9.0,
        threshold=5.0,
        boxes=[Box(30, 50, 60, 70, 9.0)],
        model_name="tiles",
        model_version="1",
        latency_s=0.01,
        mask=mask,
    )
    overlay = inspection_overlay(part, inspection)
    assert overlay.shape[:2] == (400, 400)  # drawn four times as large
    filled = tinted(overlay)
    assert filled[200:280, 120:240][3:-3, 3:-3].all()  # inside the box's outline
    assert filled[340:360, 20:32].all()
    below_caption = filled[30:]
    outside = np.ones(below_caption.shape, bool)
    outside[200 - 30 - 3 : 280 - 30 + 3, 120 - 3 : 240 + 3] = False
    outside[340 - 30 : 360 - 30, 20:32] = False
    assert not below_caption[outside].any()  # the part itself is left grey
    # The fill is translucent: the part's texture shows through it.
    assert overlay[200:280, 120:240][3:-3, 3:-3, 2].std() > 5
    plain = inspection_overlay(part, replace(inspection, mask=None))
    assert not tinted(plain)[205:275, 125:235].any()  # without a mask only the outline


def test_tile_overlay_tints_the_pixels_the_model_judged_defective(tmp_path):
    source, result = marked_blowhole(tmp_path)
    out = tmp_path / "overlay.png"
    args = ["inspect", "--image", str(source.path), "--model", "magnetic-tile", "--out", str(out)]
    assert picture.main(args) == 0
    overlay = cv2.imread(str(out))
    assert result.mask is not None and overlay is not None
    assert_fill_follows_the_mask(overlay, result.mask, result.boxes)


def marked_blowhole(tmp_path: Path) -> tuple[Sample, Inspection]:
    """The first blowhole tile the shipped model marks pixels on, with its inspection."""
    registry = ModelRegistry(
        shipped=SHIPPED_MODELS, trained=tmp_path / "trained", activations=memory_activations()
    )
    model, inspector = registry.active("magnetic-tile"), Inspector()
    for sample in tile_samples(shared_data("magnetic_tile")):
        if sample.label == "blowhole":
            result = inspector.inspect(model, sample.read())
            if result.mask is not None and result.mask.any():
                return sample, result
    raise AssertionError("the tile model marks no pixel on any blowhole")


def assert_fill_follows_the_mask(
    overlay: np.ndarray, mask: np.ndarray, boxes: Sequence[Box]
) -> None:
    """Tinted exactly where the mask is, apart from box outlines and the caption."""
    size = (overlay.shape[1], overlay.shape[0])
    marked = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) > 0
    scale = overlay.shape[0] // mask.shape[0]
    outlines = np.zeros_like(marked)
    for box in boxes:  # 2 pixels wide, drawn over the fill
        x0, y0, x1, y1 = (v * scale for v in (box.x_min, box.y_min, box.x_max, box.y_max))
        outlines[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = True
        outlines[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = False
    outlines[:30] = True  # and the caption
    filled = tinted(overlay)
    assert filled[marked & ~outlines].mean() > 0.95
    assert not filled[~marked & ~outlines].any()
