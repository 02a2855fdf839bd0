"""The models a maintenance replica serves, loaded once at start from verified artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.maintenance import artifacts
from services.maintenance.domain.failure import FailureModel
from services.maintenance.domain.rul import RulModel

DEFAULT_RUL_MODEL = "rul-fd004"
FAILURE_MODEL = "failure-ai4i"


@dataclass(frozen=True)
class ModelRegistry:
    rul: dict[str, tuple[RulModel, str]]
    failure: tuple[FailureModel, str]

    @classmethod
    def load(cls, directory: Path | None = None) -> ModelRegistry:
        """Every artifact of the manifest; raises ArtifactError if any fails verification."""
        directory = directory or artifacts.DEFAULT_DIRECTORY
        manifest = artifacts.read_manifest(directory)
        rul: dict[str, tuple[RulModel, str]] = {}
        failure: tuple[FailureModel, str] | None = None
        for name, entry in manifest["artifacts"].items():
            loaded = artifacts.load_artifact(directory, name)
            if entry.get("kind") == "rul":
                rul[name] = (RulModel.from_arrays(loaded.arrays), loaded.version)
            elif entry.get("kind") == "failure":
                failure = (FailureModel.from_arrays(loaded.arrays), loaded.version)
        if failure is None or DEFAULT_RUL_MODEL not in rul:
            raise artifacts.ArtifactError(
                f"{directory}: the manifest must list {DEFAULT_RUL_MODEL} and {FAILURE_MODEL}"
            )
        return cls(rul=rul, failure=failure)

    def versions(self) -> dict[str, str]:
        found = {name: version for name, (_, version) in self.rul.items()}
        found[FAILURE_MODEL] = self.failure[1]
        return found
