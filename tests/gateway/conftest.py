"""Fixtures for the gateway tests: gRPC backends on port 0 and an Envoy in front of them.

The tests use only two backend fixtures:

- ``backends`` yields ``{cluster_name: port}`` of one running backend per service;
- ``set_backend_serving(cluster, serving)`` flips the health a backend reports for its
  service name.

Today both are served by in-process stand-ins (health, reflection and GetServiceInfo
only). To test the real services, start them in ``backends`` instead and implement
``set_backend_serving`` with their health servicers; the tests rely only on the contract:
each service answers GetServiceInfo with its own name, reports health under its full
service name, and its reflection lists all three services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from manufacturing.common.v1 import service_info_pb2
from manufacturing.maintenance.v1 import maintenance_service_pb2
from manufacturing.quality.v1 import quality_service_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2

from services.devstack.envoy import EnvoyProcess

# cluster name -> (full service name, module holding its request/response messages)
SERVICES = {
    "scheduling": ("manufacturing.scheduling.v1.SchedulingService", scheduling_service_pb2),
    "quality": ("manufacturing.quality.v1.QualityService", quality_service_pb2),
    "maintenance": ("manufacturing.maintenance.v1.MaintenanceService", maintenance_service_pb2),
}

# Fast health checks so a NOT_SERVING backend leaves rotation well under a second.
HEALTH_CHECK_INTERVAL_S = 0.2


@dataclass
class StandIn:
    """One stand-in backend: a gRPC server answering for a single service."""

    cluster: str
    service_name: str
    port: int
    server: grpc.Server
    health: health.HealthServicer

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set(self.service_name, status)


class _Unavailable(grpc.GenericRpcHandler):
    """Answers every call of one service UNAVAILABLE (a host that is going away)."""

    def __init__(self, service_name: str) -> None:
        self._prefix = f"/{service_name}/"

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if not handler_call_details.method.startswith(self._prefix):
            return None

        def unavailable(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in: unavailable")

        return grpc.unary_unary_rpc_method_handler(unavailable)


def start_stand_in(cluster: str, *, color: str = "", unavailable: bool = False) -> StandIn:
    """A stand-in for ``cluster``; ``unavailable`` ones answer every call UNAVAILABLE
    (while their health still says SERVING), ``color`` shows in GetServiceInfo."""
    service_name, messages = SERVICES[cluster]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
    )

    def get_service_info(request: object, context: grpc.ServicerContext) -> object:
        info = service_info_pb2.ServiceInfo(
            service_name=service_name,
            version="0.0.0-stand-in",
            environment="development",
            color=color,
        )
        return messages.GetServiceInfoResponse(info=info)

    handler = grpc.method_handlers_generic_handler(
        service_name,
        {
            "GetServiceInfo": grpc.unary_unary_rpc_method_handler(
                get_service_info,
                request_deserializer=messages.GetServiceInfoRequest.FromString,
                response_serializer=messages.GetServiceInfoResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((_Unavailable(service_name),) if unavailable else (handler,))

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)

    # As the real services will: reflection names every service of the suite.
    reflection.enable_server_reflection(
        [name for name, _ in SERVICES.values()] + [health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return StandIn(cluster, service_name, port, server, health_servicer)


@pytest.fixture(scope="module")
def stand_in_backends() -> Iterator[dict[str, StandIn]]:
    started: dict[str, StandIn] = {}
    try:
        for cluster in SERVICES:
            started[cluster] = start_stand_in(cluster)
        yield started
    finally:
        for stand_in in started.values():
            stand_in.server.stop(grace=None)


@pytest.fixture(scope="module")
def backends(stand_in_backends: dict[str, StandIn]) -> dict[str, int]:
    """``{cluster_name: port}`` of a running backend per service."""
    return {name: stand_in.port for name, stand_in in stand_in_backends.items()}


@pytest.fixture(scope="module")
def set_backend_serving(
    stand_in_backends: dict[str, StandIn],
) -> Iterator[Callable[[str, bool], None]]:
    """``set_backend_serving(cluster, serving)``; every backend is SERVING again afterwards."""
    yield lambda cluster, serving: stand_in_backends[cluster].set_serving(serving)
    for stand_in in stand_in_backends.values():
        stand_in.set_serving(True)


@pytest.fixture(scope="module")
def envoy(backends: dict[str, int]) -> Iterator[EnvoyProcess]:
    """Envoy on free ports in front of ``backends``, with fast health checks."""
    with EnvoyProcess(
        backends,
        listen_host="127.0.0.1",
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        health_check_timeout=1.0,
        concurrency=1,
        file_flush_interval_ms=50,
    ) as process:
        yield process
