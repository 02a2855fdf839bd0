"""Defect masks over gRPC: the magnetic-tile anomaly model marks the pixels it judges
defective, checked against the data set's own defect masks on the held-out block."""

from __future__ import annotations

import cv2
import numpy as np
from manufacturing.quality.v1 import inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb

from services.quality.datasets import GOOD_TILE_CLASS, Sample, blocked_split, tile_samples
from services.quality.train import TRAIN_FRACTION
from tests.shared_data import shared_data

TILE = "magnetic-tile"


def held_out_tiles(label: str) -> list[Sample]:
    _, held_out = blocked_split(tile_samples(shared_data("magnetic_tile")), TRAIN_FRACTION)
    return [s for s in held_out if s.label == label]


def mask_of(result: inspection_pb2.InspectionResult) -> np.ndarray:
    """The result's mask, checked to be what the contract promises."""
    assert result.mask[:8] == b"\x89PNG\r\n\x1a\n"
    mask = cv2.imdecode(np.frombuffer(result.mask, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.dtype == np.uint8
    assert mask.shape == (result.height, result.width)  # single channel, the image's size
    assert set(np.unique(mask).tolist()) <= {0, 255}
    return mask > 0


def test_tile_masks_fall_on_the_defects(shared_quality_stub):
    blowholes = held_out_tiles("blowhole")
    hits = marked = defect = pixels = judged = 0
    for sample in blowholes:
        result = shared_quality_stub.Inspect(
            pb.InspectRequest(image=sample.path.read_bytes(), model=TILE)
        ).result
        mask, truth = mask_of(result), sample.mask()
        assert truth is not None and mask.shape == truth.shape
        if result.verdict == inspection_pb2.VERDICT_GOOD:
            assert not mask.any()
            continue
        judged += int(mask.any())
        hits += int((mask & truth).sum())
        marked += int(mask.sum())
        defect += int(truth.sum())
        pixels += truth.size
    assert judged >= len(blowholes) // 3, f"only {judged} of {len(blowholes)} marked"
    # Marked pixels land on the blowhole far more often than a pixel drawn at random
    # from the same images would (the holes cover about 0.1 % of them).
    assert hits / marked > 10 * defect / pixels


def test_good_tiles_get_an_empty_mask_of_their_size(shared_quality_stub):
    tiles = held_out_tiles(GOOD_TILE_CLASS)[:10]
    good = 0
    for sample in tiles:
        result = shared_quality_stub.Inspect(
            pb.InspectRequest(image=sample.path.read_bytes(), model=TILE)
        ).result
        mask = mask_of(result)
        assert mask.shape == sample.read().shape
        if result.verdict == inspection_pb2.VERDICT_GOOD:
            good += 1
            assert not mask.any() and not result.regions
    assert good >= 8  # the model's false alarms are rare; most of these must be judged


def test_the_stream_carries_the_same_mask(shared_quality_stub):
    sample = held_out_tiles("blowhole")[-1]
    data = sample.path.read_bytes()
    unary = shared_quality_stub.Inspect(pb.InspectRequest(image=data, model=TILE)).result
    (reply,) = shared_quality_stub.InspectStream(
        iter([pb.InspectStreamRequest(frame_id="tile", image=data, model=TILE)])
    )
    assert reply.WhichOneof("outcome") == "result"
    assert np.array_equal(mask_of(reply.result), mask_of(unary))
