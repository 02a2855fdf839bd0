"""Fixtures shared by every test layer: each real service in-process on port 0.

The services that keep data run once on the embedded SQLite and once on the real
PostgreSQL (in a throwaway schema), so the same tests cover both.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from manufacturing.maintenance.v1 import maintenance_service_pb2_grpc
from manufacturing.quality.v1 import quality_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime.server import GrpcService
from tests.backends import (  # noqa: F401  (fixtures registered for every test)
    BACKENDS,
    drop_schemas,
    postgres_admin,
    postgres_url,
    redis_url,
    unique_name,
)
from tests.harness import channel_to, serve, settings_for


@pytest.fixture(params=BACKENDS)
def database_environ(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Variables selecting the database: none for SQLite, a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield {}
        return
    schema = unique_name()
    url = request.getfixturevalue("postgres_url")
    admin = request.getfixturevalue("postgres_admin")
    yield {"DATABASE_URL": url, "MFG_DATABASE__SCHEMA_NAME": schema}
    drop_schemas(admin, [schema])


@pytest.fixture
def scheduling(tmp_path, database_environ) -> Iterator[GrpcService]:
    with serve(settings_for("scheduling", tmp_path, **database_environ)) as service:
        yield service


@pytest.fixture
def quality(tmp_path, database_environ) -> Iterator[GrpcService]:
    with serve(settings_for("quality", tmp_path, **database_environ)) as service:
        yield service


@pytest.fixture
def maintenance(tmp_path, database_environ) -> Iterator[GrpcService]:
    with serve(settings_for("maintenance", tmp_path, **database_environ)) as service:
        yield service


@pytest.fixture
def scheduling_channel(scheduling) -> Iterator[grpc.Channel]:
    with channel_to(scheduling.port) as channel:
        yield channel


@pytest.fixture
def scheduling_stub(scheduling_channel) -> scheduling_service_pb2_grpc.SchedulingServiceStub:
    return scheduling_service_pb2_grpc.SchedulingServiceStub(scheduling_channel)


@pytest.fixture
def quality_stub(quality) -> Iterator[quality_service_pb2_grpc.QualityServiceStub]:
    with channel_to(quality.port) as channel:
        yield quality_service_pb2_grpc.QualityServiceStub(channel)


@pytest.fixture
def maintenance_stub(maintenance) -> Iterator[maintenance_service_pb2_grpc.MaintenanceServiceStub]:
    with channel_to(maintenance.port) as channel:
        yield maintenance_service_pb2_grpc.MaintenanceServiceStub(channel)
