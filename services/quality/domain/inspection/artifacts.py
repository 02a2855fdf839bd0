"""Model artifacts on disk: ``<root>/<name>/<version>/manifest.json`` + ``model.npz``.

The manifest records the sha256 of every file, the training-data fingerprint, metrics
and creation time. Arrays are loaded with ``allow_pickle=False`` and only after the file's
hash matches the manifest, so a tampered or truncated artifact is refused, never run.
Where signing is configured the manifest must carry a valid signature too
(:mod:`services.runtime.model_signing`).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.runtime import model_signing
from services.runtime.errors import FailedPrecondition

MANIFEST = "manifest.json"
ARRAYS = "model.npz"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    kind: str  # "classifier" | "anomaly"
    created: str  # ISO 8601 UTC
    feature_version: str
    classes: tuple[str, ...]
    data_fingerprint: str
    metrics: dict[str, Any]
    files: dict[str, str]  # file name -> sha256
    training: dict[str, Any]

    def to_json(self) -> str:
        document = {**self.__dict__, "classes": list(self.classes)}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        document = json.loads(text)
        document["classes"] = tuple(document["classes"])
        return cls(**document)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_arrays(arrays: dict[str, NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def write_artifact(
    root: Path, manifest_fields: dict[str, Any], arrays: dict[str, NDArray[Any]]
) -> Manifest:
    payload = encode_arrays(arrays)
    manifest = Manifest(**manifest_fields, files={ARRAYS: sha256_bytes(payload)})
    directory = root / manifest.name / manifest.version
    directory.mkdir(parents=True, exist_ok=False)
    (directory / ARRAYS).write_bytes(payload)
    (directory / MANIFEST).write_text(manifest.to_json())
    return manifest


def read_artifact(directory: Path) -> tuple[Manifest, dict[str, NDArray[Any]]]:
    """Manifest and arrays of one version; FailedPrecondition if a hash does not match."""
    try:
        text = model_signing.read_manifest(directory / MANIFEST)
    except model_signing.SignatureError as error:
        raise FailedPrecondition(
            f"model {directory.parent.name} {directory.name}: its manifest's signature is "
            "missing or wrong; refusing to load it"
        ) from error
    manifest = Manifest.from_json(text)
    payload = (directory / ARRAYS).read_bytes()
    expected = manifest.files.get(ARRAYS)
    if sha256_bytes(payload) != expected:
        raise FailedPrecondition(
            f"model {manifest.name} {manifest.version}: {ARRAYS} does not match the sha256 "
            "in its manifest; refusing to load it"
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as loaded:
        arrays = {key: loaded[key] for key in loaded.files}
    return manifest, arrays


def fingerprint(entries: list[tuple[str, str]]) -> str:
    """Order-independent fingerprint of training data given (name, sha256) pairs."""
    digest = hashlib.sha256()
    for name, file_hash in sorted(entries):
        digest.update(f"{name}\t{file_hash}\n".encode())
    return digest.hexdigest()
