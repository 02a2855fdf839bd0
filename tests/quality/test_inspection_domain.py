"""Inspection domain: safe decoding, features, artifacts with hash checks, both models."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.quality.datasets import blocked_split, neu_samples, tile_samples
from services.quality.domain.inspection.anomaly import (
    WORST_PATCHES,
    AnomalyModel,
    coreset,
    fit_anomaly_model,
    patch_descriptors,
)
from services.quality.domain.inspection.artifacts import Manifest, read_artifact, write_artifact
from services.quality.domain.inspection.classifier import fit_classifier
from services.quality.domain.inspection.features import TextureFeatures
from services.quality.domain.inspection.images import ImageFormat, decode_gray, read_header
from services.quality.domain.inspection.inspector import Inspector, LoadedModel, Verdict
from services.quality.domain.inspection.regions import place_cells
from services.quality.evaluation import evaluate_anomaly
from services.runtime.errors import FailedPrecondition, InvalidArgument
from tests.shared_data import shared_data


def encoded(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


@pytest.mark.parametrize(
    ("ext", "image_format"),
    [(".png", ImageFormat.PNG), (".jpg", ImageFormat.JPEG), (".bmp", ImageFormat.BMP)],
)
def test_header_gives_format_and_size(ext, image_format):
    image = np.zeros((37, 53), np.uint8)
    header = read_header(encoded(image, ext), "image")
    assert (header.format, header.width, header.height) == (image_format, 53, 37)
    assert decode_gray(encoded(image, ext), "image", max_pixels=10_000).shape == (37, 53)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"GIF89a" + b"\0" * 40, "unsupported"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 4, "corrupt"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "corrupt"),
    ],
)
def test_bad_bytes_are_refused_naming_the_field(data, words):
    with pytest.raises(InvalidArgument) as caught:
        decode_gray(data, "requests[3].image", max_pixels=10_000)
    (violation,) = caught.value.violations
    assert violation.field == "requests[3].image"
    assert words in violation.description


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # A header claiming 100000 x 100000 with no pixel data at all: refused for its size.
    with pytest.raises(InvalidArgument) as caught:
        decode_gray(png_header_only(100_000, 100_000), "image", max_pixels=4_000_000)
    assert "limit is 4000000" in caught.value.violations[0].description


def test_truncated_image_is_corrupt():
    data = encoded(np.full((64, 64), 128, np.uint8), ".png")
    with pytest.raises(InvalidArgument, match="corrupt"):
        decode_gray(data[: len(data) // 2], "image", max_pixels=10_000)


def test_texture_features_are_deterministic_and_fixed_length():
    rng = np.random.default_rng(1)
    features = TextureFeatures()
    a = features(rng.integers(0, 255, (200, 200), dtype=np.uint8))
    b = features(rng.integers(0, 255, (120, 90), dtype=np.uint8))
    assert a.shape == b.shape and np.isfinite(a).all()
    same = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    assert np.array_equal(features(same), features(same.copy()))


def test_artifact_round_trip_and_tamper_refusal(tmp_path: Path):
    fields = {
        "name": "m",
        "version": "1",
        "kind": "classifier",
        "created": "2026-01-01T00:00:00+00:00",
        "feature_version": "x",
        "classes": ("a", "b"),
        "data_fingerprint": "f",
        "metrics": {"accuracy": 1.0},
        "training": {},
    }
    write_artifact(tmp_path, fields, {"w": np.arange(3.0)})
    manifest, arrays = read_artifact(tmp_path / "m" / "1")
    assert manifest.classes == ("a", "b") and np.array_equal(arrays["w"], [0, 1, 2])
    payload = tmp_path / "m" / "1" / "model.npz"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(FailedPrecondition, match="sha256"):
        read_artifact(tmp_path / "m" / "1")


MANIFEST = Manifest(
    name="tiles",
    version="t",
    kind="anomaly",
    created="2026-01-01T00:00:00+00:00",
    feature_version="patch-v1",
    classes=(),
    data_fingerprint="",
    metrics={},
    files={},
    training={},
)


def textured(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    noise = rng.normal(120, 12, (size, size)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.0), 0, 255).astype(np.uint8)


def test_anomaly_model_flags_and_locates_a_dark_blob():
    rng = np.random.default_rng(7)
    good = [patch_descriptors(textured(rng)) for _ in range(12)]
    calibration = [patch_descriptors(textured(rng)) for _ in range(6)]
    model = LoadedModel(manifest=MANIFEST, anomaly=fit_anomaly_model(good, calibration))
    inspector = Inspector()
    defect = textured(rng)
    cv2.circle(defect, (110, 50), 7, 20, -1)
    part = inspector.inspect(model, textured(rng))
    assert part.verdict is Verdict.GOOD
    assert part.mask is not None and part.mask.shape == (160, 160) and not part.mask.any()
    result = inspector.inspect(model, defect)
    assert result.verdict is Verdict.DEFECTIVE
    box = result.boxes[0]
    assert box.x_min <= 110 < box.x_max and box.y_min <= 50 < box.y_max
    mask = result.mask
    assert mask is not None and mask.shape == defect.shape
    assert set(np.unique(mask)) == {0, 255} and mask[50, 110] == 255
    boxed = np.zeros(mask.shape, bool)
    for region in result.boxes:  # each box fits one region of the mask tightly
        inside = mask[region.y_min : region.y_max, region.x_min : region.x_max] > 0
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        boxed[region.y_min : region.y_max, region.x_min : region.x_max] = True
    assert not (mask > 0)[~boxed].any()


def test_cells_are_laid_on_the_pixels_whose_centres_they_hold():
    cells = np.arange(6, dtype=np.float64).reshape(2, 3)
    placed = place_cells(cells, cell=10.0, offset=5.0, width=40, height=27, outside=-1.0)
    assert placed.shape == (27, 40)
    assert (placed[:5] == -1).all() and (placed[25:] == -1).all()  # no cell covers these
    assert (placed[:, :5] == -1).all() and (placed[:, 35:] == -1).all()
    assert (placed[5:15, 5:15] == 0).all() and (placed[15:25, 25:35] == 5).all()
    assert (placed[5:15, 15:25] == 1).all() and (placed[15:25, 5:15] == 3).all()
    # A cell of a fractional number of pixels takes the pixels whose centres it holds.
    placed = place_cells(cells[:1, :1], cell=2.5, offset=0.6, width=5, height=5, outside=-1.0)
    inside = [-1, 0, 0, -1, -1]  # the cell spans 0.6 to 3.1: centres 1.5 and 2.5
    assert placed.tolist() == [[-1] * 5, inside, inside, [-1] * 5, [-1] * 5]


def test_classifier_on_a_small_neu_slice():
    train, test = blocked_split(neu_samples(shared_data("neu_det")), 0.1)
    test = [s for s in test if s.number > 190]  # a block far from the training one
    features = TextureFeatures()
    classifier = fit_classifier(
        np.stack([features(s.read()) for s in train]), [s.label for s in train]
    )
    probabilities = classifier.probabilities(np.stack([features(s.read()) for s in test]))
    predicted = [classifier.classes[i] for i in probabilities.argmax(axis=1)]
    accuracy = np.mean([p == s.label for p, s in zip(predicted, test, strict=True)])
    assert accuracy >= 0.8
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_coreset_keeps_rare_points_a_random_draw_would_miss():
    rng = np.random.default_rng(3)
    common = rng.normal(0.0, 1.0, (2000, 4))
    rare = np.full((3, 4), 25.0) + rng.normal(0.0, 0.1, (3, 4))
    points = np.vstack([common, rare]).astype(np.float32)
    chosen = coreset(points, 20)
    assert len(set(chosen.tolist())) == 20
    assert {2000, 2001, 2002} & set(chosen.tolist())  # the far cluster is represented
    assert np.array_equal(coreset(points, 5000), np.arange(len(points)))


def test_anomaly_image_score_leaves_out_the_corner_patches():
    grid = patch_descriptors(textured(np.random.default_rng(5)))
    scores = np.zeros(grid.rows * grid.cols)
    scores[grid.corners()] = 100.0  # where two image edges meet good parts vary most
    assert AnomalyModel.image_score(grid, scores) == 0.0
    scores[grid.cols + 1] = 80.0  # the same value one patch inside counts
    assert AnomalyModel.image_score(grid, scores) == pytest.approx(80.0 / WORST_PATCHES)


def test_anomaly_evaluation_checks_boxes_against_the_defect_masks(tmp_path):
    rng = np.random.default_rng(11)
    good = [patch_descriptors(textured(rng)) for _ in range(12)]
    calibration = [patch_descriptors(textured(rng)) for _ in range(6)]
    model = LoadedModel(manifest=MANIFEST, anomaly=fit_anomaly_model(good, calibration))
    for label in ("free", "blowhole"):
        (tmp_path / "images" / label).mkdir(parents=True)
        (tmp_path / "masks" / label).mkdir(parents=True)
    for number in range(3):
        cv2.imwrite(str(tmp_path / f"images/free/exp1_num_{number}.png"), textured(rng))
    defect, mask = textured(rng), np.zeros((160, 160), np.uint8)
    # 12 standard deviations of the texture below it: a blob much darker still would
    # change the whole image's contrast, which scales the brightness maps of every patch.
    cv2.circle(defect, (110, 50), 7, 80, -1)
    cv2.circle(mask, (110, 50), 7, 255, -1)
    cv2.imwrite(str(tmp_path / "images/blowhole/exp1_num_9.png"), defect)
    cv2.imwrite(str(tmp_path / "masks/blowhole/exp1_num_9.png"), mask)
    samples = tile_samples(tmp_path)
    assert evaluate_anomaly(model, samples, Inspector()).box_hit_rate == 1.0
    cv2.imwrite(str(tmp_path / "masks/blowhole/exp1_num_9.png"), np.roll(mask, 80, axis=1))
    assert evaluate_anomaly(model, samples, Inspector()).box_hit_rate == 0.0
    (tmp_path / "masks/blowhole/exp1_num_9.png").unlink()
    assert evaluate_anomaly(model, samples, Inspector()).box_hit_rate is None
