"""One scheduling server (SQLite) per module, for tests that do not depend on the database.

Tests of storage and rescheduling use the per-test ``scheduling_stub`` fixture, which runs
once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from tests.harness import channel_to, serve, settings_for


@pytest.fixture(scope="module")
def shared_scheduling_stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[scheduling_service_pb2_grpc.SchedulingServiceStub]:
    folder: Path = tmp_path_factory.mktemp("scheduling")
    with serve(settings_for("scheduling", folder)) as service, channel_to(service.port) as channel:
        yield scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
