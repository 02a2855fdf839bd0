"""The local suite as `make up` runs it (three services behind a real Envoy), once for
the SDK, example and CLI tests that go through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.rollout.state import TopologyStore
from tests.gateway.local_suite import local_suite as start_local_suite

SERVICES = ("scheduling", "quality", "maintenance")


@dataclass(frozen=True)
class LocalSuite:
    gateway: int
    admin: int
    ports: dict[str, int]
    data_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway}"


@pytest.fixture(scope="session")
def local_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    data_dir = tmp_path_factory.mktemp("suite") / "var"
    with start_local_suite(data_dir) as running:
        admin = urlsplit(TopologyStore(data_dir).load().admin_url).port
        assert admin is not None
        ports = dict(zip(SERVICES, running.backends, strict=True))
        yield LocalSuite(running.gateway, admin, ports, data_dir)
