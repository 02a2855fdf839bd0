"""What the gateway and the rollout controller read from the contract.

Everything here comes from the generated descriptors, never from a hand-kept list: a
method becomes retryable at the gateway by being marked
``option idempotency_level = NO_SIDE_EFFECTS;`` (or ``IDEMPOTENT``) in its .proto.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from manufacturing.maintenance.v1 import maintenance_service_pb2
from manufacturing.quality.v1 import quality_service_pb2
from manufacturing.scheduling.v1 import scheduling_service_pb2

# Short name (cluster prefix, ``python -m services.<name>``) -> service descriptor.
_DESCRIPTORS: dict[str, ServiceDescriptor] = {
    "scheduling": scheduling_service_pb2.DESCRIPTOR.services_by_name["SchedulingService"],
    "quality": quality_service_pb2.DESCRIPTOR.services_by_name["QualityService"],
    "maintenance": maintenance_service_pb2.DESCRIPTOR.services_by_name["MaintenanceService"],
}

SERVICES: tuple[str, ...] = tuple(_DESCRIPTORS)

_SAFE_LEVELS = frozenset(
    {
        descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        descriptor_pb2.MethodOptions.IDEMPOTENT,
    }
)


@dataclass(frozen=True)
class Method:
    name: str
    path: str  # ``/package.Service/Method``, the HTTP/2 :path of a call
    idempotent: bool  # NO_SIDE_EFFECTS or IDEMPOTENT: safe to send again
    client_streaming: bool
    server_streaming: bool


def full_name(service: str) -> str:
    """``quality`` -> ``manufacturing.quality.v1.QualityService``."""
    try:
        name: str = _DESCRIPTORS[service].full_name
    except KeyError:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}") from None
    return name


def service_descriptor(service: str) -> ServiceDescriptor:
    full_name(service)  # a clear error for an unknown name
    return _DESCRIPTORS[service]


def _idempotent(method: MethodDescriptor) -> bool:
    options = descriptor_pb2.MethodOptions()
    if method.has_options:
        options.ParseFromString(method.GetOptions().SerializeToString())
    return options.idempotency_level in _SAFE_LEVELS


def methods(service: str) -> tuple[Method, ...]:
    descriptor = _DESCRIPTORS[service]
    return tuple(
        Method(
            name=method.name,
            path=f"/{descriptor.full_name}/{method.name}",
            idempotent=_idempotent(method),
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        )
        for method in descriptor.methods
    )
