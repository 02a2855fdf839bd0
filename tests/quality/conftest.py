"""One quality server per test module for the stateless RPCs (charts, capability,
inspection): starting a server per test would dominate the run time. Tests of stored
state use the per-test ``quality_stub`` from tests/conftest.py (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from manufacturing.quality.v1 import quality_service_pb2_grpc

from tests.harness import channel_to, serve, settings_for


@pytest.fixture(scope="module")
def shared_quality_stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[quality_service_pb2_grpc.QualityServiceStub]:
    with (
        serve(
            settings_for(
                "quality",
                tmp_path_factory.mktemp("quality"),
                MFG_QUALITY__INSPECTION_POOL="processes",  # as deployed
            )
        ) as service,
        channel_to(service.port) as channel,
    ):
        yield quality_service_pb2_grpc.QualityServiceStub(channel)
