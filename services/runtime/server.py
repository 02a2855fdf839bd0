"""The gRPC server every service runs in, from start to graceful stop.

Threaded grpcio, chosen by measurement (``python -m bench.server_models``): it serves
1.2-1.3x the unary calls per server CPU-second of grpc.aio here, with the same latency,
and a 20 ms NumPy handler does not delay other calls (inline it stalls an aio event
loop). Its cost is that a blocking streaming handler holds a worker thread, so
long-lived streams must be written non-blocking (as the health Watch is served) or stay
well below ``server.max_workers``.

Shutdown, on SIGTERM or SIGINT: every health status turns NOT_SERVING first, then
after ``shutdown_delay_s`` (time for balancers to notice) the server stops taking
calls, open subscriptions are ended UNAVAILABLE (their callers reconnect elsewhere,
see interceptors/stopping.py), other in-flight calls get ``grace_period_s`` to finish,
and only then are the database and Redis closed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from manufacturing.maintenance.v1 import maintenance_service_pb2
from manufacturing.quality.v1 import quality_service_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2
from prometheus_client.registry import Collector

from services.runtime.access import rules_of
from services.runtime.auth import Authenticator
from services.runtime.build_info import BuildInfo
from services.runtime.config import Settings, TlsSettings
from services.runtime.interceptors.access_log import AccessLogInterceptor
from services.runtime.interceptors.auth import AuthInterceptor
from services.runtime.interceptors.deadline import DefaultDeadlineInterceptor
from services.runtime.interceptors.errors import ErrorMappingInterceptor
from services.runtime.interceptors.metrics import MetricsInterceptor
from services.runtime.interceptors.request_id import RequestIdInterceptor
from services.runtime.interceptors.stopping import EndStreamsOnStopInterceptor
from services.runtime.interceptors.stream_limit import StreamLimitInterceptor
from services.runtime.metrics import ModelInfo, ServiceMetrics
from services.runtime.readiness import Readiness, ReadinessCheck

logger = logging.getLogger(__name__)


def suite_service_names() -> tuple[str, ...]:
    """Full names of every suite service, from the generated descriptors.

    Each backend's reflection lists the whole suite, so `grpcurl list` through the
    gateway (which routes reflection to any one backend) shows the whole contract;
    importing the modules also puts their descriptors in the pool reflection reads.
    """
    return (
        maintenance_service_pb2.DESCRIPTOR.services_by_name["MaintenanceService"].full_name,
        quality_service_pb2.DESCRIPTOR.services_by_name["QualityService"].full_name,
        scheduling_service_pb2.DESCRIPTOR.services_by_name["SchedulingService"].full_name,
    )


@dataclass(frozen=True)
class ServiceParts:
    """What a service's composition root hands to the runtime."""

    service_name: str
    register: Callable[[grpc.Server], None]
    readiness_checks: Mapping[str, ReadinessCheck]
    close: Callable[[], None] = lambda: None
    # Domain metrics, created unregistered; registered in the process's registry.
    collectors: Sequence[Collector] = ()
    # Version of each model serving now, exported as model_info.
    model_versions: Callable[[], Mapping[str, str]] = dict


def server_options(settings: Settings) -> list[tuple[str, int]]:
    server = settings.server
    return [
        # A leftover server on the same port would silently take half the connections.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", server.max_message_bytes),
        ("grpc.max_send_message_length", server.max_message_bytes),
        ("grpc.keepalive_time_ms", int(server.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(server.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.max_connection_age_ms", int(server.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(server.max_connection_age_grace_s * 1000)),
    ]


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """Credentials from PEM files; a client CA makes the server demand client certificates."""
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class GrpcService:
    """One service's server: interceptors, health, reflection and the stop sequence."""

    def __init__(self, settings: Settings, build: BuildInfo, parts: ServiceParts) -> None:
        self.settings = settings
        self._parts = parts
        self.metrics = ServiceMetrics(
            service=settings.service,
            version=build.version,
            git_revision=build.git_revision,
            color=settings.color,
        )
        self.metrics.register(
            [*parts.collectors, ModelInfo(settings.service, parts.model_versions)]
        )
        self.metrics_port = 0
        # Set once the server stops taking calls: subscriptions end then.
        self._taking_no_calls = threading.Event()
        self._workers = futures.ThreadPoolExecutor(
            max_workers=settings.server.max_workers, thread_name_prefix="grpc"
        )
        # Outermost first; authorization runs inside error mapping so its denials
        # become status codes, and inside the access log so they are logged.
        interceptors: list[grpc.ServerInterceptor] = [  # type: ignore[type-arg]
            RequestIdInterceptor(build.version),
            MetricsInterceptor(self.metrics),
            AccessLogInterceptor(),
            ErrorMappingInterceptor(),
        ]
        # The handler reads its client-stream requests through a counting wrapper.
        interceptors.append(StreamLimitInterceptor(settings.server.max_stream_messages))
        if settings.auth.enabled:
            pool = descriptor_pool.Default()  # type: ignore[no-untyped-call]
            service = pool.FindServiceByName(parts.service_name)
            interceptors.append(
                AuthInterceptor(rules_of(service), Authenticator.from_settings(settings.auth))
            )
        # These two hand the handler a context of their own: for unary calls one that
        # expires at the default deadline, for subscriptions one that sees the stop.
        interceptors.append(DefaultDeadlineInterceptor(settings.server.default_deadline_s))
        interceptors.append(EndStreamsOnStopInterceptor(self._taking_no_calls))
        self.server = grpc.server(
            self._workers,
            interceptors=interceptors,
            options=server_options(settings),
            maximum_concurrent_rpcs=settings.server.max_concurrent_rpcs,
        )
        self.health = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="health"
            ),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        parts.register(self.server)
        reflection.enable_server_reflection(
            (
                *suite_service_names(),
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.readiness = Readiness(
            self.health, [parts.service_name], parts.readiness_checks, settings.readiness_interval_s
        )
        self.port = 0
        self.health_port = 0
        self._health_server: grpc.Server | None = None
        self._stopped = threading.Event()

    def start(self) -> int:
        address = f"{self.settings.server.host}:{self.settings.server.port}"
        tls = self.settings.tls
        if tls.enabled:
            self.port = self.server.add_secure_port(address, server_credentials(tls))
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"server.port: cannot listen on {address}")
        if self.settings.server.health_port is not None:
            self.health_port = self._start_health_server()
        if self.settings.metrics.enabled:
            metrics = self.settings.metrics
            self.metrics_port = self.metrics.serve(metrics.host, metrics.port)
        self.server.start()
        self.readiness.start()
        logger.info("serving", extra={"address": f"{self.settings.server.host}:{self.port}"})
        return self.port

    def _start_health_server(self) -> int:
        """Plaintext grpc.health.v1 only, sharing the main server's statuses."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe"),
            options=[("grpc.so_reuseport", 0)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self.settings.server.host}:{self.settings.server.health_port}"
        port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"server.health_port: cannot listen on {address}")
        server.start()
        self._health_server = server
        return port

    def stop(self, grace_s: float | None = None, delay_s: float | None = None) -> None:
        """NOT_SERVING, wait for balancers, drain in-flight calls, close dependencies."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        server = self.settings.server
        grace_s = server.grace_period_s if grace_s is None else grace_s
        delay_s = server.shutdown_delay_s if delay_s is None else delay_s
        logger.info("shutting down", extra={"grace_s": grace_s, "delay_s": delay_s})
        self.readiness.stop()
        threading.Event().wait(delay_s)
        stopped = self.server.stop(grace_s)
        self._taking_no_calls.set()
        stopped.wait()
        if self._health_server is not None:
            self._health_server.stop(0).wait()
        self._workers.shutdown(wait=False)
        self.metrics.close()
        try:
            self._parts.close()
        finally:
            logger.info("stopped")

    def wait_for_termination(self) -> None:
        self.server.wait_for_termination()


def stop_on_signals(service: GrpcService) -> threading.Event:
    """SIGTERM/SIGINT ask for a graceful stop; returns the event the main thread waits on."""
    requested = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            logger.warning("second signal: stopping without grace")
            service.server.stop(0)
            return
        logger.info("signal received", extra={"signal": signal.Signals(signum).name})
        requested.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return requested
