"""The model registry keeps serving through a database outage, and says so when it
cannot serve or change anything yet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.exc import OperationalError

from services.quality import registry as registry_module
from services.quality.registry import (
    SHIPPED_MODELS,
    Activations,
    ModelRegistry,
    memory_activations,
)
from services.runtime.errors import Unavailable
from tests.quality.test_inspection_service import NEU, NEU_VERSION, copy_version


class FlakyDatabase:
    """Activation scopes over an in-memory history that fail while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self._scope = memory_activations()

    @contextmanager
    def scope(self) -> Iterator[Activations]:
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        with self._scope() as activations:
            yield activations


def make_registry(tmp_path, database: FlakyDatabase) -> ModelRegistry:
    return ModelRegistry(
        shipped=SHIPPED_MODELS, trained=tmp_path / "models", activations=database.scope
    )


def test_the_last_known_activations_keep_serving_while_the_database_is_down(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_module, "HISTORY_TTL_S", 0.0)  # reread on every call
    copy_version(tmp_path, "trained-a")
    database = FlakyDatabase()
    registry = make_registry(tmp_path, database)
    registry.promote(NEU, "trained-a")
    database.down = True
    assert registry.active(NEU).version == "trained-a"
    with pytest.raises(Unavailable, match="cannot be changed"):
        registry.rollback(NEU)
    database.down = False
    assert registry.rollback(NEU).manifest.version == NEU_VERSION
    assert registry.active(NEU).version == NEU_VERSION


def test_without_any_activations_read_yet_an_outage_is_unavailable(tmp_path):
    database = FlakyDatabase()
    database.down = True
    with pytest.raises(Unavailable, match="cannot be read"):
        make_registry(tmp_path, database).active(NEU)
