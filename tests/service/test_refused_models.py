"""A refused model leaves its service running, NOT_SERVING and saying why.

Scheduling and maintenance read their models from a scratch copy (``models_dir``) in
which one artifact is altered after release: the process starts, readiness reports
NOT_SERVING, one log line names the manifest and the reason, the calls that need the
model are answered UNAVAILABLE naming it, and the others work. Quality, whose readiness
loads its active inspection models, says why once however often readiness is asked.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2 as maintenance_pb
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

from services.maintenance import artifacts as maintenance_artifacts
from services.maintenance.registry import FAILURE_MODEL
from services.quality.registry import SHIPPED_MODELS
from services.runtime import model_signing
from services.runtime.errors import Unavailable
from services.runtime.models import all_serving, load_model
from services.scheduling import duration_artifacts
from services.scheduling.app import DURATION_MODEL
from tests.harness import channel_to, serve, settings_for
from tests.maintenance.test_rpcs import HEAT_DISSIPATION_FAILURE
from tests.scheduling.test_rpcs import op, shop

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SCHEDULING = scheduling_pb.DESCRIPTOR.services_by_name["SchedulingService"].full_name
MAINTENANCE = maintenance_pb.DESCRIPTOR.services_by_name["MaintenanceService"].full_name


def tampered_copy(source: Path, target: Path, artifact: str) -> Path:
    """``source`` copied to ``target`` with one byte of ``artifact`` flipped."""
    shutil.copytree(source, target)
    payload = bytearray((target / artifact).read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (target / artifact).write_bytes(bytes(payload))
    return target


def artifact_file(directory: Path, name: str) -> str:
    """The file of maintenance artifact ``name``, as its manifest lists it."""
    return str(maintenance_artifacts.read_manifest(directory)["artifacts"][name]["file"])


@contextmanager
def started(service: str, tmp_path: Path, models: Path) -> Iterator[grpc.Channel]:
    """The service on ``models``; asserts it came up alive but not ready, for models only."""
    settings = settings_for(service, tmp_path, MFG_MODELS_DIR=str(models))
    with serve(settings) as running, channel_to(running.port) as channel:
        assert running.readiness.failing_checks() == ["models"]
        health = health_pb2_grpc.HealthStub(channel)
        name = SCHEDULING if service == "scheduling" else MAINTENANCE
        ready = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
        alive = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert (ready, alive) == (NOT_SERVING, SERVING)
        yield channel


def refusals(caplog: pytest.LogCaptureFixture, manifest: Path) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.getMessage() == "model manifest refused" and r.manifest == str(manifest)  # type: ignore[attr-defined]
    ]


def test_scheduling_with_a_tampered_duration_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = duration_artifacts.DEFAULT_DIRECTORY
    models = tampered_copy(source, tmp_path / "models", next(p.name for p in source.glob("*.npz")))
    with caplog.at_level(logging.ERROR), started("scheduling", tmp_path, models) as channel:
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.PredictDurations(
                scheduling_pb.PredictDurationsRequest(
                    queries=[
                        scheduling_pb.DurationQuery(
                            product="P03", machine_id="m0", quantity=4, shift="day"
                        )
                    ]
                ),
                timeout=10,
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"model {DURATION_MODEL} is not serving" in str(caught.value.details())
        assert "sha256" in str(caught.value.details())
        # A problem with every duration given needs no model.
        solved = stub.Solve(scheduling_pb.SolveRequest(problem=shop()), timeout=20)
        assert solved.schedule.status == schedule_pb2.SOLVE_STATUS_OPTIMAL
        left_out = op(("a", 0))
        left_out.work.CopyFrom(schedule_pb2.WorkDescription(product="P03", quantity=4, shift="day"))
        problem = shop()
        problem.jobs[0].operations.append(left_out)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Solve(scheduling_pb.SolveRequest(problem=problem), timeout=20)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        info = stub.GetServiceInfo(scheduling_pb.GetServiceInfoRequest(), timeout=5).info
        assert DURATION_MODEL not in info.model_versions
    (refused,) = refusals(caplog, models / duration_artifacts.MANIFEST)
    assert "sha256" in refused.reason  # type: ignore[attr-defined]
    assert refused.exc_info is None  # a refusal, not a fault: no traceback


def maintenance_calls_without_the_failure_model(channel: grpc.Channel) -> str:
    """PredictFailure's refusal; asserts that calls needing no model still work."""
    stub = maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.PredictFailure(HEAT_DISSIPATION_FAILURE, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    stub.ListMachines(maintenance_pb.ListMachinesRequest(), timeout=10)
    info = stub.GetServiceInfo(maintenance_pb.GetServiceInfoRequest(), timeout=5).info
    assert FAILURE_MODEL not in info.model_versions
    return str(caught.value.details())


def test_maintenance_with_a_tampered_failure_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = maintenance_artifacts.DEFAULT_DIRECTORY
    models = tampered_copy(source, tmp_path / "models", artifact_file(source, FAILURE_MODEL))
    with caplog.at_level(logging.ERROR), started("maintenance", tmp_path, models) as channel:
        details = maintenance_calls_without_the_failure_model(channel)
    assert f"model {FAILURE_MODEL} is not serving" in details and "sha256" in details
    (refused,) = [
        r
        for r in refusals(caplog, models / maintenance_artifacts.MANIFEST)
        if FAILURE_MODEL in r.reason  # type: ignore[attr-defined]
    ]
    assert "does not match the manifest" in refused.reason  # type: ignore[attr-defined]


def test_maintenance_with_an_unsigned_manifest_where_signatures_are_required(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public_key = model_signing.keygen(tmp_path / "keys")
    monkeypatch.setenv(model_signing.PUBLIC_KEY_ENV, str(public_key))
    models = tmp_path / "models"
    shutil.copytree(maintenance_artifacts.DEFAULT_DIRECTORY, models)
    with caplog.at_level(logging.ERROR), started("maintenance", tmp_path, models) as channel:
        details = maintenance_calls_without_the_failure_model(channel)
    assert "no readable signature" in details
    (refused,) = refusals(caplog, models / maintenance_artifacts.MANIFEST)
    assert "no readable signature" in refused.reason  # type: ignore[attr-defined]


def test_a_loader_that_fails_refuses_its_model_with_the_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_loader() -> object:
        raise KeyError("interval.edges")

    manifest = tmp_path / "manifest.json"
    with caplog.at_level(logging.ERROR):
        model = load_model("rul-fd004", manifest, broken_loader)
    assert not all_serving([model])
    with pytest.raises(Unavailable, match=r"model rul-fd004 is not serving: .*interval\.edges"):
        model.get()
    (refused,) = refusals(caplog, manifest)
    assert refused.exc_info is not None and refused.exc_info[0] is KeyError


def test_quality_with_a_tampered_inspection_model_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tampered_copy(SHIPPED_MODELS, tmp_path / "models", "neu-surface/2/model.npz")
    settings = settings_for("quality", tmp_path, MFG_MODELS_DIR=str(models))
    with caplog.at_level(logging.ERROR), serve(settings) as running:
        # Readiness is asked again and again (probes, the interval): one log line.
        for _ in range(3):
            assert not running.readiness.refresh()
        assert running.readiness.failing_checks() == ["models"]
    logged = [
        r for r in caplog.records if r.getMessage() == "an active inspection model cannot be loaded"
    ]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and "sha256" in str(logged[0].exc_info[1])
