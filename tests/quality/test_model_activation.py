"""The active model version is stored in the service's database: replicas on one
database serve the same version, whichever of them promoted or rolled back."""

from __future__ import annotations

import time

from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing.quality.v1 import quality_service_pb2_grpc

from services.quality.registry import HISTORY_TTL_S
from tests.harness import channel_to, serve, settings_for
from tests.quality.test_inspection_service import NEU, NEU_VERSION, copy_version, encode, texture


def serving_version(stub, image: bytes) -> str:
    return stub.Inspect(pb.InspectRequest(image=image, model=NEU)).result.model_version


def eventually_serving(stub, image: bytes, version: str) -> None:
    """The replica serves ``version`` within the history's refresh interval."""
    deadline = time.monotonic() + HISTORY_TTL_S + 2.0
    while serving_version(stub, image) != version:
        assert time.monotonic() < deadline, f"still serving {serving_version(stub, image)}"
        time.sleep(0.1)


def test_replicas_on_one_database_agree_on_the_active_model(tmp_path, database_environ):
    copy_version(tmp_path, "trained-a")  # the model folder both replicas read
    settings = settings_for("quality", tmp_path, **database_environ)
    image = encode(texture())
    with (
        serve(settings) as replica_a,
        serve(settings) as replica_b,
        channel_to(replica_a.port) as channel_a,
        channel_to(replica_b.port) as channel_b,
    ):
        stub_a = quality_service_pb2_grpc.QualityServiceStub(channel_a)
        stub_b = quality_service_pb2_grpc.QualityServiceStub(channel_b)
        assert serving_version(stub_b, image) == NEU_VERSION
        stub_a.PromoteModel(pb.PromoteModelRequest(name=NEU, version="trained-a"))
        assert serving_version(stub_a, image) == "trained-a"  # at once where promoted
        eventually_serving(stub_b, image, "trained-a")
        listed = stub_b.ListModels(pb.ListModelsRequest(name=NEU)).models
        assert {(m.version, m.active) for m in listed} == {
            (NEU_VERSION, False),
            ("trained-a", True),
        }
        rolled = stub_b.RollbackModel(pb.RollbackModelRequest(name=NEU)).model
        assert rolled.version == NEU_VERSION
        eventually_serving(stub_a, image, NEU_VERSION)
    # A restarted replica reads the same history from the database.
    with serve(settings) as restarted, channel_to(restarted.port) as channel:
        stub = quality_service_pb2_grpc.QualityServiceStub(channel)
        stub.PromoteModel(pb.PromoteModelRequest(name=NEU, version="trained-a"))
    with serve(settings) as restarted, channel_to(restarted.port) as channel:
        stub = quality_service_pb2_grpc.QualityServiceStub(channel)
        assert serving_version(stub, image) == "trained-a"
        assert not (tmp_path / "models" / "activations.json").exists()
