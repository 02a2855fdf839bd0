"""Signed model manifests: verified where a public key is configured, in every service.

The shipped models are copied to a scratch directory and signed there with a key made
for the test; the repository's models are never written.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.maintenance import artifacts as maintenance_artifacts
from services.quality import registry as quality_registry
from services.quality.domain.inspection.artifacts import MANIFEST, read_artifact
from services.runtime import model_signing
from services.runtime.errors import FailedPrecondition
from services.scheduling import duration_artifacts
from tests.harness import channel_to, serve, settings_for

QUALITY = "manufacturing.quality.v1.QualityService"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    assert model_signing.main(["keygen", str(tmp_path / "keys")]) == 0
    return tmp_path / "keys" / "signing-key.pem", tmp_path / "keys" / "signing-key.pub.pem"


@pytest.fixture
def signing_required(monkeypatch: pytest.MonkeyPatch, keys: tuple[Path, Path]) -> Path:
    """Turn verification on with the test key; returns the private key to sign with."""
    monkeypatch.setenv(model_signing.PUBLIC_KEY_ENV, str(keys[1]))
    return keys[0]


def sign(private_key: Path, *manifests: Path) -> None:
    assert model_signing.main(["sign", str(private_key), *map(str, manifests)]) == 0


def tamper(manifest: Path) -> None:
    """Change the manifest after signing, keeping it valid JSON with the same hashes."""
    manifest.write_text(manifest.read_text(encoding="utf-8") + " ", encoding="utf-8")


def test_without_a_key_manifests_are_read_as_before(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"artifacts": {}}', encoding="utf-8")
    assert model_signing.configured_key({}) is None
    assert model_signing.read_manifest(manifest) == '{"artifacts": {}}'


def test_signed_manifest_verifies_and_any_change_is_refused_with_a_log_line(
    tmp_path: Path, signing_required: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"artifacts": {}}', encoding="utf-8")
    with pytest.raises(model_signing.SignatureError, match="no readable signature"):
        model_signing.read_manifest(manifest)
    sign(signing_required, manifest)
    assert model_signing.read_manifest(manifest) == '{"artifacts": {}}'

    tamper(manifest)
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(model_signing.SignatureError):
        model_signing.read_manifest(manifest)
    (refused,) = [r for r in caplog.records if r.getMessage() == "model manifest refused"]
    assert refused.manifest == str(manifest)  # type: ignore[attr-defined]
    assert "does not verify" in refused.reason  # type: ignore[attr-defined]

    model_signing.signature_path(manifest).write_text("not base64!\n", encoding="ascii")
    with pytest.raises(model_signing.SignatureError):
        model_signing.read_manifest(manifest)


def test_a_signature_by_another_key_is_refused(tmp_path: Path, signing_required: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}", encoding="utf-8")
    other_private, _ = model_signing.keygen(tmp_path / "other")
    sign(other_private, manifest)
    with pytest.raises(model_signing.SignatureError, match="does not verify"):
        model_signing.read_manifest(manifest)


def test_scheduling_and_maintenance_loaders_verify_the_signature(
    tmp_path: Path, signing_required: Path
) -> None:
    scheduling = tmp_path / "scheduling"
    shutil.copytree(duration_artifacts.DEFAULT_DIRECTORY, scheduling)
    maintenance = tmp_path / "maintenance"
    maintenance.mkdir()
    shutil.copy(maintenance_artifacts.DEFAULT_DIRECTORY / "manifest.json", maintenance)
    for directory in (scheduling, maintenance):
        sign(signing_required, directory / "manifest.json")

    version, _ = duration_artifacts.load(scheduling)
    assert version
    assert maintenance_artifacts.read_manifest(maintenance)["artifacts"]

    for directory in (scheduling, maintenance):
        tamper(directory / "manifest.json")
    with pytest.raises(duration_artifacts.ArtifactError, match="refusing"):
        duration_artifacts.load(scheduling)
    with pytest.raises(maintenance_artifacts.ArtifactError, match="refusing its models"):
        maintenance_artifacts.read_manifest(maintenance)


def test_quality_loader_verifies_the_signature(tmp_path: Path, signing_required: Path) -> None:
    shipped = sorted(quality_registry.SHIPPED_MODELS.glob(f"*/*/{MANIFEST}"))[0].parent
    model = tmp_path / shipped.parent.name / shipped.name
    shutil.copytree(shipped, model)
    sign(signing_required, model / MANIFEST)
    manifest, arrays = read_artifact(model)
    assert manifest.name == shipped.parent.name and arrays
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")

    tamper(model / MANIFEST)
    with pytest.raises(FailedPrecondition, match="signature"):
        read_artifact(model)


def test_quality_service_is_not_serving_with_unsigned_models(
    tmp_path: Path, signing_required: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped manifests carry no signature for the test key: no model may serve."""
    request = health_pb2.HealthCheckRequest(service=QUALITY)
    with (
        caplog.at_level(logging.ERROR),
        serve(settings_for("quality", tmp_path)) as service,
        channel_to(service.port) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        time.sleep(1.0)  # several readiness rounds (every 0.1 s here)
        status = health.Check(request, timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Liveness is unaffected: the process runs and says why it is not ready.
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
    refused = [r for r in caplog.records if r.getMessage() == "model manifest refused"]
    assert refused and "no readable signature" in refused[0].reason  # type: ignore[attr-defined]
