"""Inspection RPCs on a real in-process quality server, with the shipped models."""

from __future__ import annotations

import json

import cv2
import grpc
import numpy as np
import pytest
from manufacturing.quality.v1 import inspection_pb2
from manufacturing.quality.v1 import quality_service_pb2 as pb

from services.quality.datasets import blocked_split, neu_samples
from services.quality.registry import SHIPPED_MODELS
from tests.errors_support import field_violations
from tests.quality.test_inspection_domain import png_header_only
from tests.shared_data import shared_data

NEU = "neu-surface"
TILE = "magnetic-tile"


def shipped_version(name: str) -> str:
    (directory,) = (SHIPPED_MODELS / name).iterdir()
    return directory.name


NEU_VERSION = shipped_version(NEU)
TILE_VERSION = shipped_version(TILE)


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def texture(seed: int = 0, size: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 20, (size, size)), 0, 255).astype(np.uint8)


def test_inspect_classifies_held_out_neu_images(shared_quality_stub):
    _, test = blocked_split(neu_samples(shared_data("neu_det")), 2 / 3)
    chosen = [s for s in test if s.number == 200]  # last image of each class
    for sample in chosen:
        result = shared_quality_stub.Inspect(
            pb.InspectRequest(image=sample.path.read_bytes(), model=NEU)
        ).result
        assert result.defect_class == sample.label
        assert result.verdict == inspection_pb2.VERDICT_DEFECTIVE
        assert sum(p.probability for p in result.probabilities) == pytest.approx(1.0)
        assert result.probabilities[0].label == sample.label
        assert result.mask == b""  # a classifier places defects with boxes only
        assert (result.width, result.height) == (200, 200)
        assert result.model_version == NEU_VERSION
        assert result.latency.ToNanoseconds() > 0


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_inspect_accepts_each_encoding(shared_quality_stub, ext):
    result = shared_quality_stub.Inspect(
        pb.InspectRequest(image=encode(texture(), ext), model=TILE)
    )
    assert result.result.model_name == TILE
    assert result.result.verdict in (inspection_pb2.VERDICT_GOOD, inspection_pb2.VERDICT_DEFECTIVE)
    assert result.result.anomaly_threshold > 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.InspectRequest(image=b"", model=NEU), "image"),
        (pb.InspectRequest(image=b"not an image at all", model=NEU), "image"),
        (pb.InspectRequest(image=encode(texture())[:100], model=NEU), "image"),
        (pb.InspectRequest(image=encode(texture()), model=""), "model"),
        (pb.InspectRequest(image=png_header_only(100_000, 100_000), model=NEU), "image"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(shared_quality_stub, request_, field):
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.Inspect(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


def test_unknown_model_is_not_found(shared_quality_stub):
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.Inspect(pb.InspectRequest(image=encode(texture()), model="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_stream_replies_in_order_and_survives_bad_images(shared_quality_stub):
    frames = []
    for index in range(12):
        image = b"\x89PNG broken" if index in (3, 7) else encode(texture(index))
        frames.append(pb.InspectStreamRequest(frame_id=f"f{index}", image=image, model=NEU))
    replies = list(shared_quality_stub.InspectStream(iter(frames)))
    assert [r.frame_id for r in replies] == [f"f{i}" for i in range(12)]
    assert [r.sequence for r in replies] == list(range(12))
    for index, reply in enumerate(replies):
        if index in (3, 7):
            assert reply.WhichOneof("outcome") == "error"
            assert reply.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert reply.error.field_errors[0].field == "image"
        else:
            assert reply.WhichOneof("outcome") == "result"
            assert reply.result.model_name == NEU


def test_models_list_promote_and_rollback(quality_stub):
    listed = quality_stub.ListModels(pb.ListModelsRequest()).models
    names = {(m.name, m.version, m.active) for m in listed}
    assert {(NEU, NEU_VERSION, True), (TILE, TILE_VERSION, True)} <= names
    neu = next(m for m in listed if m.name == NEU)
    assert neu.kind == inspection_pb2.MODEL_KIND_CLASSIFIER
    assert neu.metrics["accuracy"] >= 0.97
    assert len(neu.sha256) == 64 and len(neu.classes) == 6
    with pytest.raises(grpc.RpcError) as caught:
        quality_stub.RollbackModel(pb.RollbackModelRequest(name=NEU))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        quality_stub.PromoteModel(pb.PromoteModelRequest(name=NEU, version="99"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        quality_stub.PromoteModel(pb.PromoteModelRequest(name=NEU))
    assert "version" in field_violations(caught.value)
    promoted = quality_stub.PromoteModel(
        pb.PromoteModelRequest(name=NEU, version=NEU_VERSION)
    ).model
    assert promoted.active and promoted.version == NEU_VERSION


def test_service_info_reports_model_versions(shared_quality_stub):
    info = shared_quality_stub.GetServiceInfo(pb.GetServiceInfoRequest()).info
    assert info.model_versions[NEU] == NEU_VERSION
    assert info.model_versions[TILE] == TILE_VERSION


def copy_version(tmp_path, version: str, *, tamper: bool = False) -> None:
    """A trained-looking version of the NEU model in the service's data directory."""
    source = SHIPPED_MODELS / NEU / NEU_VERSION
    target = tmp_path / "models" / NEU / version
    target.mkdir(parents=True)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["version"] = version
    manifest["created"] = "2030-01-01T00:00:00+00:00"
    (target / "manifest.json").write_text(json.dumps(manifest))
    payload = bytearray((source / "model.npz").read_bytes())
    if tamper:
        payload[len(payload) // 2] ^= 0xFF
    (target / "model.npz").write_bytes(bytes(payload))


def test_promotion_switches_serving_and_rollback_returns(quality_stub, tmp_path):
    copy_version(tmp_path, "trained-a")
    copy_version(tmp_path, "trained-b", tamper=True)
    image = encode(texture())

    def serving() -> str:
        return quality_stub.Inspect(pb.InspectRequest(image=image, model=NEU)).result.model_version

    listed = quality_stub.ListModels(pb.ListModelsRequest(name=NEU)).models
    assert {(m.version, m.active) for m in listed} == {
        (NEU_VERSION, True),
        ("trained-a", False),
        ("trained-b", False),
    }
    assert serving() == NEU_VERSION  # trained versions wait for promotion
    quality_stub.PromoteModel(pb.PromoteModelRequest(name=NEU, version="trained-a"))
    assert serving() == "trained-a"
    with pytest.raises(grpc.RpcError) as caught:
        quality_stub.PromoteModel(pb.PromoteModelRequest(name=NEU, version="trained-b"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # hash mismatch
    assert serving() == "trained-a"
    rolled = quality_stub.RollbackModel(pb.RollbackModelRequest(name=NEU)).model
    assert rolled.version == NEU_VERSION
    assert serving() == NEU_VERSION


def training_stream(
    per_label: int, *, name: str = "line-7"
) -> list[pb.TrainInspectionModelRequest]:
    """Two visibly different synthetic textures: smooth noise vs. vertical stripes."""
    requests = []
    for index in range(per_label):
        smooth = texture(index, 64)
        stripes = smooth.copy()
        stripes[:, ::4] = 255
        requests.append(pb.TrainInspectionModelRequest(image=encode(smooth), label="good"))
        requests.append(pb.TrainInspectionModelRequest(image=encode(stripes), label="striped"))
    requests[0].model = name
    return requests


def test_training_creates_an_inactive_version_with_metrics(quality_stub):
    reply = quality_stub.TrainInspectionModel(iter(training_stream(6)))
    assert reply.model.name == "line-7" and not reply.model.active
    assert reply.model.metrics["accuracy"] == 1.0
    assert list(reply.confusion_matrix.labels) == ["good", "striped"]
    assert [list(r.counts) for r in reply.confusion_matrix.rows] == [[2, 0], [0, 2]]
    stripes = texture(99, 64)
    stripes[:, ::4] = 255
    with pytest.raises(grpc.RpcError) as caught:  # not served before promotion
        quality_stub.Inspect(pb.InspectRequest(image=encode(stripes), model="line-7"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    quality_stub.PromoteModel(pb.PromoteModelRequest(name="line-7", version=reply.model.version))
    result = quality_stub.Inspect(pb.InspectRequest(image=encode(stripes), model="line-7")).result
    assert result.defect_class == "striped"
    assert result.model_version == reply.model.version


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda r: r.__setitem__(
                0, pb.TrainInspectionModelRequest(image=r[0].image, label="good")
            ),
            "requests[0].model",
        ),
        (lambda r: setattr(r[3], "image", b"junk"), "requests[3].image"),
        (lambda r: setattr(r[2], "label", ""), "requests[2].label"),
        (lambda r: setattr(r[4], "model", "other"), "requests[4].model"),
        (lambda r: r.__delitem__(slice(4, None)), "requests"),
    ],
)
def test_bad_training_streams_name_the_field(shared_quality_stub, mutate, field):
    requests = training_stream(4)
    mutate(requests)
    with pytest.raises(grpc.RpcError) as caught:
        shared_quality_stub.TrainInspectionModel(iter(requests))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
