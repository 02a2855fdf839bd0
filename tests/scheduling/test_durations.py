"""Learned processing times: the model, its artifact, and PredictDurations."""

from __future__ import annotations

import json

import grpc
import pytest
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.scheduling import duration_artifacts
from services.scheduling.domain.durations import (
    OperationRecord,
    evaluate,
    fit,
    synthetic_history,
)
from tests.errors_support import field_violations


def test_model_learns_the_structure_of_the_records():
    records = synthetic_history(3000, seed=3)
    model = fit(records[:2400])
    metrics = evaluate(model, records[2400:])
    assert metrics["mape"] < 0.2  # noise alone is about 10%
    # More units take longer; a machine never seen contributes nothing, but still answers.
    small, large, unknown = model.predict(
        [
            OperationRecord("P01", "m1", 10, "day"),
            OperationRecord("P01", "m1", 150, "day"),
            OperationRecord("P01", "zz", 10, "day"),
        ]
    )
    assert large > 3 * small > 0 and unknown > 0


def test_artifact_round_trip_and_tampering_is_refused(tmp_path):
    model = fit(synthetic_history(500, seed=1))
    version = duration_artifacts.save(
        tmp_path, model, training_data={"sha256": "x"}, metrics={"mape": 0.1}, params={}
    )
    loaded_version, loaded = duration_artifacts.load(tmp_path)
    query = [OperationRecord("P02", "m3", 40, "night")]
    assert loaded_version == version and loaded.predict(query) == model.predict(query)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    artifact = tmp_path / manifest["artifacts"][version]["file"]
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(duration_artifacts.ArtifactError, match="sha256"):
        duration_artifacts.load(tmp_path)


def test_shipped_model_loads_with_its_metrics():
    version, model = duration_artifacts.load()
    manifest = json.loads((duration_artifacts.DEFAULT_DIRECTORY / "manifest.json").read_text())
    assert manifest["current"] == version
    assert manifest["artifacts"][version]["metrics"]["mape"] < 0.2
    assert model.predict([OperationRecord("P00", "m0", 20, "day")])[0] > 0


def test_predict_durations_rpc(shared_scheduling_stub):
    reply = shared_scheduling_stub.PredictDurations(
        pb.PredictDurationsRequest(
            queries=[
                pb.DurationQuery(product="P03", machine_id="m2", quantity=5, shift="day"),
                pb.DurationQuery(product="P03", machine_id="m2", quantity=100, shift="day"),
            ]
        )
    )
    assert reply.model_version.startswith("durations-")
    assert 0 < reply.durations[0] < reply.durations[1]
    info = shared_scheduling_stub.GetServiceInfo(pb.GetServiceInfoRequest()).info
    assert info.model_versions["processing_time"] == reply.model_version


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.PredictDurationsRequest(), "queries"),
        (
            pb.PredictDurationsRequest(
                queries=[pb.DurationQuery(product="P", machine_id="m", quantity=0, shift="d")]
            ),
            "queries[0].quantity",
        ),
        (
            pb.PredictDurationsRequest(
                queries=[pb.DurationQuery(machine_id="m", quantity=1, shift="d")]
            ),
            "queries[0].product",
        ),
    ],
)
def test_bad_duration_queries_name_the_field(shared_scheduling_stub, request_, field):
    with pytest.raises(grpc.RpcError) as caught:
        shared_scheduling_stub.PredictDurations(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
