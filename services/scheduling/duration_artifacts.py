"""The processing-time model on disk: one ``.npz`` of arrays and a manifest.

The manifest records the file, its sha256, the training-data fingerprint, metrics, the
vocabularies and the creation time. The file is read only after its sha256 matches, and
with ``allow_pickle=False``, so a tampered file is refused and can never run code. Where
signing is configured the manifest must carry a valid signature too
(:mod:`services.runtime.model_signing`).
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from services.runtime import model_signing
from services.runtime.models import ModelRefused
from services.scheduling.domain.durations import DurationModel

DEFAULT_DIRECTORY = Path(__file__).parent / "models"
MANIFEST = "manifest.json"


class ArtifactError(ModelRefused):
    """The model is missing or does not match its manifest."""


def save(
    directory: Path,
    model: DurationModel,
    *,
    training_data: dict[str, Any],
    metrics: dict[str, float],
    params: dict[str, Any],
) -> str:
    """Write ``durations-<sha12>.npz``, make it the manifest's current model; its version."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **model.to_arrays())
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    version = f"durations-{digest[:12]}"
    (directory / f"{version}.npz").write_bytes(data)
    manifest = {
        "current": version,
        "artifacts": {
            version: {
                "file": f"{version}.npz",
                "sha256": digest,
                "kind": "log-linear ridge regression of processing time",
                "training_data": training_data,
                "metrics": metrics,
                "params": params,
                "vocab": model.vocab,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return version


def load(directory: Path = DEFAULT_DIRECTORY) -> tuple[str, DurationModel]:
    """The manifest's current model, after checking its sha256."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(model_signing.read_manifest(path))
        version = manifest["current"]
        entry = manifest["artifacts"][version]
    except (OSError, ValueError, KeyError, TypeError, model_signing.SignatureError) as error:
        raise ArtifactError(f"{path}: no usable manifest ({error})") from error
    data = (directory / entry["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ArtifactError(f"{entry['file']}: sha256 does not match the manifest")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        model = DurationModel(
            vocab=entry["vocab"],
            coef=np.asarray(arrays["coef"], dtype=np.float64),
            intercept=float(arrays["intercept"][0]),
        )
    return version, model
