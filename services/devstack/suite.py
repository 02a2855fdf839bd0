"""The local topology: the three services as processes, Envoy in front of them.

``make up`` runs this. The same topology the platform runs, on one machine, with the
embedded SQLite database unless DATABASE_URL is set: migrate (one-shot), start each
service, wait for its readiness, start the gateway, wait until each service answers
through it, print how to call it, and on Ctrl-C / SIGTERM stop the gateway first and
then each service gracefully.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.envoy import EnvoyProcess
from services.devstack.gateway_security import GatewaySecurity
from services.rollout import processes
from services.rollout.checks import ClientTls, service_channel
from services.rollout.processes import REPOSITORY
from services.rollout.state import ColorState, ServiceState, Topology, TopologyStore
from services.rollout.xds import DEFAULT_PORTS, HEALTH_ROUTE_HEADER, UpstreamTls
from services.runtime.config import load_settings
from services.runtime.server import suite_service_names

logger = logging.getLogger(__name__)

SERVICES = ("scheduling", "quality", "maintenance")
READY_TIMEOUT_S = 45.0
HEALTH_CHECK_INTERVAL_S = 1.0


class SuiteError(RuntimeError):
    """The suite could not be brought up; the message says which part failed."""


@dataclass(frozen=True)
class SuitePorts:
    """Gateway, admin, and each service's blue (``services``) and green ports.

    Green defaults to 5006x with the default blue ports, else to free ports.
    """

    gateway: int = 8080
    admin: int = 9901
    services: Mapping[str, int] | None = None
    green: Mapping[str, int] | None = None

    def of(self, service: str) -> int:
        return self.services[service] if self.services else DEFAULT_PORTS[service]["blue"][0]

    def green_ports(self) -> dict[str, int]:
        if self.green:
            return dict(self.green)
        if self.services is None:
            return {s: DEFAULT_PORTS[s]["green"][0] for s in SERVICES}
        return dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))


def free_ports(count: int) -> list[int]:
    """Ports free now, below the kernel's ephemeral range.

    A port the kernel hands out as the local end of outgoing connections (32768+ by
    default) can be taken by any client between this check and a server binding it.
    """
    found: list[int] = []
    candidates = random.sample(range(20_000, 32_000), 200)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SuiteError(f"no {count} free ports found between 20000 and 32000")


def full_name(service: str) -> str:
    return next(name for name in suite_service_names() if f".{service}." in name)


def wait_until_serving(
    port: int,
    service_name: str,
    deadline: float,
    alive: Callable[[], bool] = lambda: True,
    tls: ClientTls | None = None,
) -> None:
    """Poll grpc.health.v1 on ``port`` until ``service_name`` is SERVING."""
    request = health_pb2.HealthCheckRequest(service=service_name)
    with service_channel(port, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not alive():
                raise SuiteError(f"{service_name} on port {port} exited while starting")
            try:
                if stub.Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SuiteError(f"{service_name} on port {port} was not SERVING in time")


def gateway_channel(port: int, ca_file: str = "") -> grpc.Channel:
    """A channel to the local gateway: TLS trusting ``ca_file`` when given."""
    target = f"127.0.0.1:{port}"
    if not ca_file:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(Path(ca_file).read_bytes()))


def wait_through_gateway(port: int, service: str, deadline: float, *, ca_file: str = "") -> None:
    """Check the service's health through the gateway until Envoy routes it to a
    healthy host (health needs no token, so this works with the gateway's JWT on)."""
    request = health_pb2.HealthCheckRequest(service=full_name(service))
    with gateway_channel(port, ca_file) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(request, timeout=1, metadata=((HEALTH_ROUTE_HEADER, service),))
                return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SuiteError(f"the gateway on port {port} did not route {service} in time")


class LocalSuite:
    """Owns the suite; ``start()`` then ``stop()``, or use it as a context.

    Each service runs its blue color (from this repository); green is idle (no
    weight, not running) until ``rollout`` starts it. The topology the rollout command
    acts on is written under ``data_dir/rollout/``; ``stop()`` stops whatever colors
    run then, including ones a rollout started.

    ``security`` hardens the gateway (TLS, JWT, rate limits); with a JWT JWK set file
    the services verify the same tokens again (``AUTH_*``), as in production. With TLS,
    ``gateway_ca_file`` is the CA the suite trusts to reach its own gateway.

    ``service_certs`` (a directory of ``python -m services.runtime.devcerts``) puts
    mutual TLS between the gateway and the services: each serves ``server.pem`` and
    demands a client certificate signed by ``ca.pem``; Envoy, the suite's own checks
    and rollouts (``ROLLOUT_TLS_*``) present ``client.pem``.
    """

    def __init__(
        self,
        ports: SuitePorts,
        data_dir: Path,
        log_dir: Path,
        security: GatewaySecurity | None = None,
        gateway_ca_file: str = "",
        service_certs: Path | None = None,
    ) -> None:
        self.ports = ports
        self.security = security
        self.service_certs = service_certs.resolve() if service_certs else None
        # The CA that signed the gateway's certificate, to reach it once it runs TLS.
        self.gateway_ca_file = gateway_ca_file
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.store = TopologyStore(data_dir)
        self.envoy: EnvoyProcess | None = None
        self._started_pids: list[int] = []

    @property
    def client_tls(self) -> ClientTls | None:
        """The client certificate the services demand, when they serve mutual TLS."""
        if self.service_certs is None:
            return None
        certs = self.service_certs
        return ClientTls(
            str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
        )

    def _environ(self) -> dict[str, str]:
        environ = {"DATA_DIR": str(self.data_dir.resolve()), "APP_ENV": "development"}
        if self.service_certs is not None:
            environ |= {
                "TLS_ENABLED": "true",
                "TLS_CERT_FILE": str(self.service_certs / "server.pem"),
                "TLS_KEY_FILE": str(self.service_certs / "server-key.pem"),
                "TLS_CLIENT_CA_FILE": str(self.service_certs / "ca.pem"),
            }
        jwt = self.security.jwt if self.security else None
        if jwt is not None and jwt.jwks_file:
            environ |= {
                "AUTH_ENABLED": "true",
                "AUTH_JWKS_FILE": str(Path(jwt.jwks_file).resolve()),
                "AUTH_ISSUER": jwt.issuer,
                "AUTH_AUDIENCE": jwt.audiences[0],
            }
        return environ

    def migrate(self) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "services.runtime.migrations", "all"],
            env={**os.environ, **self._environ()},
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
        green = self.ports.green_ports()
        services: dict[str, ServiceState] = {}
        for service in SERVICES:
            port = self.ports.of(service)
            # Blue serves metrics where ops/prometheus looks (config), green 10 above it.
            metrics = load_settings(service, {**os.environ, **self._environ()}).metrics.port
            blue_metrics, green_metrics = ([metrics], [metrics + 10]) if metrics else ([], [])
            pids = processes.start_color(
                service, "blue", [port], REPOSITORY, self._environ(), self.log_dir, blue_metrics
            )
            self._started_pids += pids
            version = processes.version_of(REPOSITORY, service)
            services[service] = ServiceState(
                colors={
                    "blue": ColorState([port], version, str(REPOSITORY), pids, blue_metrics),
                    "green": ColorState([green[service]], metrics_ports=green_metrics),
                }
            )
        for service in SERVICES:
            pid = services[service].colors["blue"].pids[0]
            try:
                wait_until_serving(
                    self.ports.of(service),
                    full_name(service),
                    deadline,
                    functools.partial(processes.alive, pid),
                    self.client_tls,
                )
            finally:
                self._check_alive(service, pid)
        xds_dir = self.data_dir.resolve() / "gateway" / "xds"
        tls = self.client_tls
        upstream = None if tls is None else UpstreamTls(tls.ca_file, tls.cert_file, tls.key_file)
        self.envoy = EnvoyProcess(
            {service: state.layout() for service, state in services.items()},
            port=self.ports.gateway,
            admin_port=self.ports.admin,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
            xds_dir=xds_dir,
            security=self.security,
            upstream_tls=upstream,
        )
        self.envoy.start()
        with self.store.locked():
            self.store.save(
                Topology(
                    data_dir=str(self.data_dir.resolve()),
                    log_dir=str(self.log_dir.resolve()),
                    admin_url=self.envoy.admin_url,
                    gateway_port=self.envoy.port,
                    xds_dir=str(xds_dir),
                    services=services,
                    xds_version=self.envoy.xds_version,
                    environ=self._environ(),
                    health_check_interval_s=HEALTH_CHECK_INTERVAL_S,
                    health_check_timeout_s=self.envoy.timing.timeout_s,
                )
            )
        for service in SERVICES:
            wait_through_gateway(self.envoy.port, service, deadline, ca_file=self.gateway_ca_file)

    def _check_alive(self, service: str, pid: int) -> None:
        code = processes.exit_code(pid)
        if code is not None:
            log = self.log_dir / f"{service}-blue.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SuiteError(f"{service} exited with code {code}; last log lines:\n{tail}")

    def first_exited(self) -> str | None:
        """A service whose live color lost a process (a rollout stops only idle ones)."""
        if not self.store.exists():
            return None
        for name, state in self.store.load().services.items():
            if not all(processes.alive(pid) for pid in state.colors[state.live].pids):
                return name
        return None

    def stop(self, grace_s: float = 20.0) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        pids = set(self._started_pids)
        if self.store.exists():
            for state in self.store.load().services.values():
                for color in state.colors.values():
                    pids.update(color.pids)
        processes.stop(sorted(pids), timeout=grace_s)
        if self.store.exists():
            with self.store.locked():
                topology = self.store.load()
                for state in topology.services.values():
                    for color in state.colors.values():
                        color.pids = []
                self.store.save(topology)
