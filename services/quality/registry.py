"""The inspection model registry: which versions exist and which one serves each name.

Versions live as artifact folders (``<root>/<name>/<version>/``): the ones shipped in
the repository (read-only) and the ones trained later under ``<data_dir>/models``. The
activation history (name -> versions promoted, oldest first) lives in the service's
database, so every replica serves the same version; without any promotion a name is
served by its newest shipped version. Each replica rereads the history at most every
``HISTORY_TTL_S`` while serving (and at once after its own promotions), so inspection
does not query the database per image. Every version is hash-verified when first loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from services.quality.domain.inspection.artifacts import MANIFEST, Manifest
from services.quality.domain.inspection.inspector import LoadedModel, load_model
from services.runtime.errors import FailedPrecondition, NotFound, Unavailable

logger = logging.getLogger(__name__)
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"
HISTORY_TTL_S = 1.0


class Activations(Protocol):
    """Promotion history per model name, oldest first; one transaction per scope."""

    def histories(self) -> dict[str, list[str]]: ...

    def append(self, name: str, version: str, now: datetime) -> None: ...

    def remove_last(self, name: str) -> None: ...


ActivationScope = Callable[[], AbstractContextManager[Activations]]


class _MemoryActivations:
    def __init__(self) -> None:
        self._histories: dict[str, list[str]] = {}

    def histories(self) -> dict[str, list[str]]:
        return {name: list(versions) for name, versions in self._histories.items()}

    def append(self, name: str, version: str, now: datetime) -> None:
        self._histories.setdefault(name, []).append(version)

    def remove_last(self, name: str) -> None:
        self._histories[name].pop()


def memory_activations() -> ActivationScope:
    """History kept in this process only: for command-line tools and benchmarks that
    serve the shipped models, never for the service."""
    store = _MemoryActivations()

    @contextmanager
    def scope() -> Iterator[Activations]:
        yield store

    return scope


@dataclass(frozen=True)
class VersionInfo:
    manifest: Manifest
    directory: Path
    shipped: bool
    active: bool


class ModelRegistry:
    def __init__(
        self,
        *,
        shipped: Path,
        trained: Path,
        activations: ActivationScope,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._shipped = shipped
        self._trained = trained
        self._activations = activations
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._history: dict[str, list[str]] = {}
        self._history_read_at = -float("inf")
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

    def _fresh_history(self, *, now: bool = False) -> dict[str, list[str]]:
        """The promotion history, reread when older than HISTORY_TTL_S (or ``now``).
        While the database cannot be read, the last history read keeps serving: a
        database outage must not stop the line's inspections."""
        if now or time.monotonic() - self._history_read_at > HISTORY_TTL_S:
            try:
                with self._activations() as activations:
                    self._history = activations.histories()
            except SQLAlchemyError as error:
                if self._history_read_at == -float("inf"):
                    raise Unavailable(f"model activations cannot be read: {error}") from error
                logger.warning("model activations cannot be read; serving the last known")
            self._history_read_at = time.monotonic()
        return self._history

    def _active_version(
        self, name: str, versions: dict[str, tuple[Manifest, Path, bool]]
    ) -> str | None:
        history = [v for v in self._fresh_history().get(name, []) if v in versions]
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

    def load_active(self) -> list[LoadedModel]:
        """Loads (and hash-checks) every active model; raises if one cannot be served."""
        return [self.active(name) for name in self.active_versions()]

    # ----- promotion -------------------------------------------------------------
    def promote(self, name: str, version: str) -> VersionInfo:
        with self._lock:
            self._found = None
            versions = self._scan_one(name)
            model = self._load(name, version, versions)  # refuses a tampered file
            with self._changing_history() as activations:
                history = [v for v in activations.histories().get(name, []) if v in versions]
                current = history[-1] if history else self._default_version(versions)
                if current != version:
                    now = self._clock()
                    if not history and current is not None:
                        # The shipped default becomes the first entry: rollback returns to it.
                        activations.append(name, current, now)
                    activations.append(name, version, now)
            _, directory, shipped = versions[version]
            return VersionInfo(model.manifest, directory, shipped, True)

    def rollback(self, name: str) -> VersionInfo:
        with self._lock:
            versions = self._scan_one(name)
            with self._changing_history() as activations:
                history = activations.histories().get(name, [])
                servable = [v for v in history if v in versions]
                if len(servable) < 2:
                    raise FailedPrecondition(
                        f"model {name!r} has no earlier active version to roll back to"
                    )
                # Drop the serving entry and any later ones whose files are gone.
                while history.pop() not in versions:
                    activations.remove_last(name)
                activations.remove_last(name)
            version = servable[-2]
            model = self._load(name, version, versions)
            _, directory, shipped = versions[version]
            return VersionInfo(model.manifest, directory, shipped, True)

    @contextmanager
    def _changing_history(self) -> Iterator[Activations]:
        """One transaction on the history; afterwards this replica rereads it at once."""
        try:
            with self._activations() as activations:
                yield activations
        except IntegrityError as error:
            raise Unavailable(
                "another replica changed the active model at the same moment; try again"
            ) from error
        except SQLAlchemyError as error:
            raise Unavailable(f"model activations cannot be changed: {error}") from error
        finally:
            self._fresh_history(now=True)
