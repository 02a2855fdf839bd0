"""The local topology: the three services as processes, Envoy in front of them.

``make up`` runs this. The same topology the platform runs, on one machine, with the
embedded SQLite database unless DATABASE_URL is set: migrate (one-shot), start each
service, wait for its readiness, start the gateway, wait until each service answers
through it, print how to call it, and on Ctrl-C / SIGTERM stop the gateway first and
then each service gracefully.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.envoy import EnvoyProcess
from services.runtime.server import suite_service_names

logger = logging.getLogger(__name__)

SERVICES = ("scheduling", "quality", "maintenance")
READY_TIMEOUT_S = 45.0


class SuiteError(RuntimeError):
    """The suite could not be brought up; the message says which part failed."""


@dataclass(frozen=True)
class SuitePorts:
    gateway: int = 8080
    admin: int = 9901
    services: Mapping[str, int] | None = None

    def of(self, service: str) -> int:
        defaults = {"scheduling": 50051, "quality": 50052, "maintenance": 50053}
        return (self.services or defaults)[service]


def full_name(service: str) -> str:
    return next(name for name in suite_service_names() if f".{service}." in name)


def wait_until_serving(port: int, service_name: str, deadline: float) -> None:
    """Poll grpc.health.v1 on ``port`` until ``service_name`` is SERVING."""
    request = health_pb2.HealthCheckRequest(service=service_name)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SuiteError(f"{service_name} on port {port} was not SERVING in time")


def wait_through_gateway(port: int, service_name: str, deadline: float) -> None:
    """Call GetServiceInfo through the gateway until Envoy routes it to a healthy host."""
    method = f"/{service_name}/GetServiceInfo"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        while time.monotonic() < deadline:
            try:
                call(b"", timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SuiteError(f"the gateway on port {port} did not route {service_name} in time")


class LocalSuite:
    """Owns the child processes; ``start()`` then ``stop()``, or use it as a context."""

    def __init__(self, ports: SuitePorts, data_dir: Path, log_dir: Path) -> None:
        self.ports = ports
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.envoy: EnvoyProcess | None = None

    def _environ(self, service: str | None = None) -> dict[str, str]:
        environ = {**os.environ, "DATA_DIR": str(self.data_dir), "APP_ENV": "development"}
        if service is not None:
            environ["MFG_SERVER__PORT"] = str(self.ports.of(service))
        return environ

    def migrate(self) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "services.runtime.migrations", "all"],
            env=self._environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise SuiteError(f"migrations failed:\n{completed.stderr[-2000:]}")

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.migrate()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for service in SERVICES:
            log = (self.log_dir / f"{service}.log").open("ab")
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                env=self._environ(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the terminal reaches only the launcher, which
                # then stops the gateway first and each service once, gracefully.
                start_new_session=True,
            )
            log.close()  # the child holds its own descriptor
        for service in SERVICES:
            self._check_alive(service)
            wait_until_serving(self.ports.of(service), full_name(service), deadline)
        self.envoy = EnvoyProcess(
            {service: self.ports.of(service) for service in SERVICES},
            port=self.ports.gateway,
            admin_port=self.ports.admin,
            health_check_interval=1.0,
        )
        self.envoy.start()
        for service in SERVICES:
            wait_through_gateway(self.envoy.port, full_name(service), deadline)

    def _check_alive(self, service: str) -> None:
        code = self.processes[service].poll()
        if code is not None:
            log = self.log_dir / f"{service}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SuiteError(f"{service} exited with code {code}; last log lines:\n{tail}")

    def first_exited(self) -> str | None:
        return next((s for s, p in self.processes.items() if p.poll() is not None), None)

    def stop(self, grace_s: float = 20.0) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
