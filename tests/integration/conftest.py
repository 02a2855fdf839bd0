"""Fixtures for tests against real backing services: SQLite files, PostgreSQL, Redis.

The same tests run on every backend through parametrized fixtures. A server that does
not answer skips its tests with the reason, unless ``REQUIRE_SERVICES=1`` (set in CI),
where it fails them: CI must not go green by skipping. Every PostgreSQL test works in a
throwaway schema ``t_<random>`` dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services.runtime.config import Settings
from services.runtime.db import create_engine_for
from tests.backends import BACKENDS, PROBE_TIMEOUT_S, drop_schemas, unique_name

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeSettings]:
    """``make(backend, service=None, url=None)``: settings for a fresh throwaway service.

    ``postgres`` without ``url`` uses the real server (skipping if it is down) and drops
    the service's schema at teardown.
    """
    schemas: list[str] = []
    admin: list[Engine] = []

    def make(
        backend: str = "sqlite", service: str | None = None, url: str | None = None
    ) -> Settings:
        service = service or unique_name()
        if backend == "postgres" and url is None:
            url = request.getfixturevalue("postgres_url")
            if not admin:
                admin.append(request.getfixturevalue("postgres_admin"))
            schemas.append(service)
        return Settings.model_validate(
            {
                "service": service,
                "environment": "development",
                "data_dir": tmp_path / "data",
                "server": {"port": 0},
                "database": {"url": url or "", "connect_timeout_s": PROBE_TIMEOUT_S},
            }
        )

    yield make

    if schemas:
        drop_schemas(admin[0], schemas)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_settings(backend: str, make_settings: MakeSettings) -> Settings:
    """Settings of a throwaway service, once per database backend."""
    return make_settings(backend)


@pytest.fixture
def sqlite_settings(make_settings: MakeSettings) -> Settings:
    return make_settings("sqlite")


@pytest.fixture
def postgres_settings(make_settings: MakeSettings) -> Settings:
    return make_settings("postgres")


@pytest.fixture
def make_engine(make_settings: MakeSettings) -> Iterator[Callable[[Settings], Engine]]:
    """Engines from ``create_engine_for``, disposed before their schemas are dropped."""
    engines: list[Engine] = []

    def make(settings: Settings) -> Engine:
        engine = create_engine_for(settings)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
