"""Model artifacts on disk: versioned ``.npz`` files described by one manifest.

The manifest records, per artifact, its file, sha256, kind, training-data fingerprint
(sha256 of every input file), metrics, parameters and creation time. A file is read only
after its sha256 matches the manifest, and always with ``allow_pickle=False``, so a
tampered or corrupt file is refused and a model file can never execute code. Where
signing is configured the manifest itself must carry a valid signature
(:mod:`services.runtime.model_signing`).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.runtime import model_signing
from services.runtime.models import ModelRefused

DEFAULT_DIRECTORY = Path(__file__).parent / "models"
MANIFEST = "manifest.json"


class ArtifactError(ModelRefused):
    """An artifact is missing, unlisted or does not match its manifest."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: Iterable[Path]) -> dict[str, Any]:
    """sha256 of each training file and one fingerprint over all of them."""
    hashes = {path.name: sha256_file(path) for path in sorted(files)}
    combined = hashlib.sha256("".join(f"{n}:{h}\n" for n, h in hashes.items()).encode())
    return {"files": hashes, "sha256": combined.hexdigest()}


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    entry: Mapping[str, Any]
    arrays: Mapping[str, NDArray[Any]]


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(model_signing.read_manifest(path))
    except FileNotFoundError as error:
        raise ArtifactError(f"no model manifest at {path}") from error
    except model_signing.SignatureError as error:
        raise ArtifactError(str(error)) from error
    except ValueError as error:
        raise ArtifactError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise ArtifactError(f"{path}: has no 'artifacts' table")
    return manifest


def save_artifact(
    directory: Path,
    name: str,
    arrays: Mapping[str, NDArray[Any]],
    *,
    kind: str,
    training_data: Mapping[str, Any],
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
) -> str:
    """Write ``<name>-<sha12>.npz`` and record it in the manifest; returns the version."""
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    version = digest[:12]
    filename = f"{name}-{version}.npz"
    try:
        manifest = read_manifest(directory)
    except ArtifactError:
        manifest = {"artifacts": {}}
    previous = manifest["artifacts"].get(name)
    (directory / filename).write_bytes(payload)
    if previous and previous.get("file") != filename:
        (directory / previous["file"]).unlink(missing_ok=True)
    manifest["artifacts"][name] = {
        "file": filename,
        "version": version,
        "sha256": digest,
        "bytes": len(payload),
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_data": dict(training_data),
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "params": dict(params),
    }
    manifest["artifacts"] = dict(sorted(manifest["artifacts"].items()))
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return version


def load_artifact(directory: Path, name: str) -> Artifact:
    """The arrays of artifact ``name``, after checking its sha256 against the manifest."""
    entry = read_manifest(directory)["artifacts"].get(name)
    if entry is None:
        raise ArtifactError(f"artifact {name!r} is not in the manifest of {directory}")
    path = directory / str(entry["file"])
    if Path(str(entry["file"])).name != entry["file"] or not path.is_file():
        raise ArtifactError(f"artifact {name!r}: file {entry['file']!r} not found")
    payload = path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != entry["sha256"]:
        raise ArtifactError(
            f"artifact {name!r}: sha256 {actual[:12]} does not match the manifest's "
            f"{str(entry['sha256'])[:12]}; refusing to load it"
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return Artifact(name=name, version=entry["version"], entry=entry, arrays=arrays)
