"""The models a maintenance replica serves, loaded once at start from verified artifacts.

Each model the manifest lists serves on its own: one that fails verification is
refused (see services/runtime/models.py) and only the calls needing it are answered
UNAVAILABLE. A refused manifest refuses the models the service cannot do without.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from services.maintenance import artifacts
from services.maintenance.domain.failure import FailureModel
from services.maintenance.domain.rul import RulModel
from services.runtime.models import ServedModel, all_serving, load_model, refused

DEFAULT_RUL_MODEL = "rul-fd004"
FAILURE_MODEL = "failure-ai4i"


def _rul(directory: Path, name: str) -> tuple[RulModel, str]:
    loaded = artifacts.load_artifact(directory, name)
    return RulModel.from_arrays(loaded.arrays), loaded.version


def _failure(directory: Path, name: str) -> tuple[FailureModel, str]:
    loaded = artifacts.load_artifact(directory, name)
    return FailureModel.from_arrays(loaded.arrays), loaded.version


@dataclass(frozen=True)
class ModelRegistry:
    rul: dict[str, ServedModel[tuple[RulModel, str]]]
    failure: ServedModel[tuple[FailureModel, str]]

    @classmethod
    def load(cls, directory: Path | None = None) -> ModelRegistry:
        """Every model of the manifest, each serving or refused with its reason."""
        directory = directory or artifacts.DEFAULT_DIRECTORY
        manifest = directory / artifacts.MANIFEST
        try:
            entries = artifacts.read_manifest(directory)["artifacts"]
        except artifacts.ArtifactError as error:
            return cls(
                rul={DEFAULT_RUL_MODEL: refused(DEFAULT_RUL_MODEL, manifest, error)},
                failure=refused(FAILURE_MODEL, manifest, error),
            )
        missing = artifacts.ArtifactError(f"{manifest} does not list the model")
        rul = {
            name: load_model(name, manifest, partial(_rul, directory, name))
            for name, entry in entries.items()
            if entry.get("kind") == "rul"
        }
        if DEFAULT_RUL_MODEL not in rul:
            rul[DEFAULT_RUL_MODEL] = refused(DEFAULT_RUL_MODEL, manifest, missing)
        failure = (
            load_model(FAILURE_MODEL, manifest, partial(_failure, directory, FAILURE_MODEL))
            if entries.get(FAILURE_MODEL, {}).get("kind") == "failure"
            else refused(FAILURE_MODEL, manifest, missing)
        )
        return cls(rul=rul, failure=failure)

    def _models(self) -> list[ServedModel[tuple[object, str]]]:
        return [*self.rul.values(), self.failure]

    def all_serving(self) -> bool:
        return all_serving(self._models())

    def versions(self) -> dict[str, str]:
        """The version of each model serving."""
        return {model.name: model.loaded[1] for model in self._models() if model.loaded}
