"""The inspection model registry: which versions exist and which one serves each name.

Versions live as artifact folders (``<root>/<name>/<version>/``): the ones shipped in
the repository (read-only) and the ones trained later under ``<data_dir>/models``. The
activation history (name -> versions promoted, oldest first) is kept in a small JSON
file under the data directory, replaced atomically; without any promotion a name is
served by its newest shipped version. Every version is hash-verified when first loaded.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from services.quality.domain.inspection.artifacts import MANIFEST, Manifest
from services.quality.domain.inspection.inspector import LoadedModel, load_model
from services.runtime.errors import FailedPrecondition, NotFound

SHIPPED_MODELS = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class VersionInfo:
    manifest: Manifest
    directory: Path
    shipped: bool
    active: bool


class ModelRegistry:
    def __init__(self, *, shipped: Path, trained: Path) -> None:
        self._shipped = shipped
        self._trained = trained
        self._history_file = trained / "activations.json"
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._history: dict[str, list[str]] = self._read_history()
        self._found: dict[str, dict[str, tuple[Manifest, Path, bool]]] | None = None

    @property
    def trained_root(self) -> Path:
        return self._trained

    # ----- discovery -------------------------------------------------------------
    def _scan(self) -> dict[str, dict[str, tuple[Manifest, Path, bool]]]:
        """Versions on disk, read once and again after ``refresh`` (listing, promotion)."""
        if self._found is None:
            self._found = self._read_disk()
        return self._found

    def refresh(self) -> None:
        with self._lock:
            self._found = None

    def _read_disk(self) -> dict[str, dict[str, tuple[Manifest, Path, bool]]]:
        found: dict[str, dict[str, tuple[Manifest, Path, bool]]] = {}
        for root, shipped in ((self._shipped, True), (self._trained, False)):
            if not root.is_dir():
                continue
            for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
                manifest = Manifest.from_json(manifest_path.read_text())
                found.setdefault(manifest.name, {}).setdefault(
                    manifest.version, (manifest, manifest_path.parent, shipped)
                )
        return found

    def _default_version(self, versions: dict[str, tuple[Manifest, Path, bool]]) -> str | None:
        """The newest shipped version; trained versions serve only once promoted."""
        shipped = [m for m, _, is_shipped in versions.values() if is_shipped]
        if not shipped:
            return None
        return max(shipped, key=lambda m: (m.created, m.version)).version

    def _active_version(
        self, name: str, versions: dict[str, tuple[Manifest, Path, bool]]
    ) -> str | None:
        history = [v for v in self._history.get(name, []) if v in versions]
        return history[-1] if history else self._default_version(versions)

    def versions(self, name: str = "") -> list[VersionInfo]:
        with self._lock:
            self._found = None
            found = self._scan()
            if name and name not in found:
                raise NotFound(f"no inspection model named {name!r}")
            infos = []
            for model_name in sorted(found):
                if name and model_name != name:
                    continue
                versions = found[model_name]
                active = self._active_version(model_name, versions)
                for version, (manifest, directory, shipped) in sorted(
                    versions.items(), key=lambda item: item[1][0].created, reverse=True
                ):
                    infos.append(VersionInfo(manifest, directory, shipped, version == active))
            return infos

    # ----- serving ---------------------------------------------------------------
    def active(self, name: str) -> LoadedModel:
        with self._lock:
            versions = self._scan_one(name)
            version = self._active_version(name, versions)
            if version is None:
                raise FailedPrecondition(
                    f"model {name!r} has no active version yet; promote one with PromoteModel"
                )
            return self._load(name, version, versions)

    def _scan_one(self, name: str) -> dict[str, tuple[Manifest, Path, bool]]:
        found = self._scan()
        if name not in found:
            raise NotFound(f"no inspection model named {name!r}")
        return found[name]

    def _load(
        self, name: str, version: str, versions: dict[str, tuple[Manifest, Path, bool]]
    ) -> LoadedModel:
        key = (name, version)
        if key not in self._loaded:
            if version not in versions:
                raise NotFound(f"model {name!r} has no version {version!r}")
            self._loaded[key] = load_model(versions[version][1])
        return self._loaded[key]

    def active_versions(self) -> dict[str, str]:
        with self._lock:
            found = self._scan()
            active = {name: self._active_version(name, v) for name, v in found.items()}
            return {name: version for name, version in active.items() if version is not None}

    def load_active(self) -> None:
        """Loads (and hash-checks) every active model; raises if one cannot be served."""
        for name in self.active_versions():
            self.active(name)

    # ----- promotion -------------------------------------------------------------
    def promote(self, name: str, version: str) -> VersionInfo:
        with self._lock:
            self._found = None
            versions = self._scan_one(name)
            model = self._load(name, version, versions)  # refuses a tampered file
            history = self._history.setdefault(name, [])
            if self._active_version(name, versions) != version:
                default = self._default_version(versions)
                if not history and default is not None:
                    history.append(default)
                history.append(version)
                self._write_history()
            _, directory, shipped = versions[version]
            return VersionInfo(model.manifest, directory, shipped, True)

    def rollback(self, name: str) -> VersionInfo:
        with self._lock:
            versions = self._scan_one(name)
            history = [v for v in self._history.get(name, []) if v in versions]
            if len(history) < 2:
                raise FailedPrecondition(
                    f"model {name!r} has no earlier active version to roll back to"
                )
            history.pop()
            self._history[name] = history
            self._write_history()
            version = history[-1]
            model = self._load(name, version, versions)
            _, directory, shipped = versions[version]
            return VersionInfo(model.manifest, directory, shipped, True)

    def _read_history(self) -> dict[str, list[str]]:
        if not self._history_file.is_file():
            return {}
        document = json.loads(self._history_file.read_text())
        return {str(k): [str(v) for v in vs] for k, vs in document.items()}

    def _write_history(self) -> None:
        self._trained.mkdir(parents=True, exist_ok=True)
        scratch = self._history_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(self._history, indent=2, sort_keys=True))
        os.replace(scratch, self._history_file)
