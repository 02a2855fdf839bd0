"""The pixel limit and the inspection workers come from the layered configuration
(config/*.yaml, MFG_*)."""

from __future__ import annotations

import multiprocessing

import grpc
import pytest
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing.quality.v1 import quality_service_pb2_grpc

from services.runtime.config import ConfigError, load_settings
from tests.errors_support import field_violations
from tests.harness import channel_to, serve, settings_for
from tests.quality.test_inspection_service import TILE, encode, texture


def test_the_default_limit_is_four_megapixels():
    assert load_settings("quality", environ={}).quality.max_image_pixels == 4_000_000


@pytest.mark.parametrize("value", ["0", "255", "many"])
def test_a_bad_limit_fails_at_start_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"quality\.max_image_pixels"):
        load_settings("quality", environ={"MFG_QUALITY__MAX_IMAGE_PIXELS": value})


def test_the_server_refuses_images_above_the_configured_limit(tmp_path):
    settings = settings_for("quality", tmp_path, MFG_QUALITY__MAX_IMAGE_PIXELS="50000")
    with serve(settings) as service, channel_to(service.port) as channel:
        stub = quality_service_pb2_grpc.QualityServiceStub(channel)
        accepted = stub.Inspect(pb.InspectRequest(image=encode(texture(size=200)), model=TILE))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Inspect(pb.InspectRequest(image=encode(texture(size=240)), model=TILE))
    assert accepted.result.width == 200
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit is 50000" in field_violations(refused.value)["image"]


@pytest.mark.parametrize(
    ("key", "value"), [("inspection_pool", "fork"), ("inspection_workers", "0")]
)
def test_a_bad_inspection_worker_setting_fails_at_start_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"quality\.{key}"):
        load_settings("quality", environ={f"MFG_QUALITY__{key.upper()}": value})


def test_inspection_on_threads_starts_no_worker_processes(tmp_path):
    settings = settings_for("quality", tmp_path, MFG_QUALITY__INSPECTION_POOL="threads")
    before = set(multiprocessing.active_children())
    with serve(settings) as service, channel_to(service.port) as channel:
        stub = quality_service_pb2_grpc.QualityServiceStub(channel)
        judged = stub.Inspect(pb.InspectRequest(image=encode(texture(size=200)), model=TILE))
        started = set(multiprocessing.active_children()) - before
    assert judged.result.width == 200
    assert started == set()
