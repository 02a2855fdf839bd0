"""Starting real services in-process for tests: port 0, a scratch database, no leftovers."""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime import migrations
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings, load_settings
from services.runtime.server import GrpcService

SERVICES = ("scheduling", "quality", "maintenance")
T = TypeVar("T")
TEST_BUILD = BuildInfo(version="9.8.7", git_revision="test", start_time=datetime.now(UTC))


def mtls_environ(certs: Path) -> dict[str, str]:
    """Settings for a server requiring client certificates, from ``devcerts.create``'s
    files in ``certs``, with the plaintext health port on a free port."""
    return {
        "TLS_ENABLED": "true",
        "TLS_CERT_FILE": str(certs / "server.pem"),
        "TLS_KEY_FILE": str(certs / "server-key.pem"),
        "TLS_CLIENT_CA_FILE": str(certs / "ca.pem"),
        "MFG_SERVER__HEALTH_PORT": "0",
    }


# Inspection worker processes cost seconds of CPU to start, which most tests of a quality
# server (charts, storage, the runtime) do not need; the tests of inspection over gRPC ask
# for processes, the deployed default (see tests/quality/conftest.py).
THREADED_INSPECTION = {"MFG_QUALITY__INSPECTION_POOL": "threads"}


def settings_for(service: str, data_dir: Path, **environ: str) -> Settings:
    """Development settings on port 0 with a SQLite file in ``data_dir``; ``environ``
    adds variables (``DATABASE_URL=...``, ``MFG_SERVER__GRACE_PERIOD_S=...``)."""
    return load_settings(
        service,
        environ={
            "DATA_DIR": str(data_dir),
            "MFG_SERVER__PORT": "0",
            "MFG_METRICS__PORT": "0",
            "MFG_SERVER__SHUTDOWN_DELAY_S": "0",
            "MFG_READINESS_INTERVAL_S": "0.1",
            **(THREADED_INSPECTION if service == "quality" else {}),
            **environ,
        },
    )


def migrate(settings: Settings) -> None:
    if settings.service in migrations.services_with_tables():
        persistence = importlib.import_module(f"services.{settings.service}.persistence")
        migrations.upgrade(settings, persistence.MIGRATIONS, persistence.metadata)


@contextmanager
def serve(settings: Settings, *, migrated: bool = True) -> Iterator[GrpcService]:
    """A started service; stopped (without delay) when the block ends."""
    if migrated:
        migrate(settings)
    app = importlib.import_module(f"services.{settings.service}.app")
    service = GrpcService(settings, TEST_BUILD, app.compose(settings, TEST_BUILD))
    service.start()
    try:
        yield service
    finally:
        service.stop(grace_s=1, delay_s=0)


@contextmanager
def channel_to(port: int, options: Mapping[str, int] | None = None) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=list((options or {}).items())) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


class StreamReader(Generic[T]):
    """A server stream read on a thread into a queue, so a test can wait for each
    message with a timeout; ``close()`` cancels the call."""

    def __init__(self, call: Any) -> None:
        self.received: queue.Queue[T] = queue.Queue()
        self.call = call
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for message in self.call:
                self.received.put(message)
        except grpc.RpcError:
            pass  # cancelled by close()

    def take(self, count: int, timeout_s: float = 15) -> list[T]:
        return [self.received.get(timeout=timeout_s) for _ in range(count)]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=5)


def wait_for_status(channel: grpc.Channel, service: str, wanted: int, timeout_s: float = 5) -> None:
    """Follow the Watch stream until ``wanted`` arrives (bounded by ``timeout_s``)."""
    stub = health_pb2_grpc.HealthStub(channel)
    for update in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s):
        if update.status == wanted:
            return
