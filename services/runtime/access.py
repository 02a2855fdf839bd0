"""Who may call which method, read from the contract.

Each method may carry ``option (manufacturing.common.v1.access) = {...}`` with its
required role and whether machine API keys may call it. Without it, methods marked
``idempotency_level = NO_SIDE_EFFECTS`` need a viewer and every other method an
operator. Health checks and reflection need nothing: probes and grpcurl must work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from google.protobuf import descriptor, descriptor_pb2
from manufacturing.common.v1 import access_pb2

# Methods of these services are open to anyone who can reach the port.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class Role(IntEnum):
    """Mirrors manufacturing.common.v1.Role; larger values are more trusted."""

    VIEWER = access_pb2.ROLE_VIEWER
    OPERATOR = access_pb2.ROLE_OPERATOR
    ENGINEER = access_pb2.ROLE_ENGINEER
    ADMIN = access_pb2.ROLE_ADMIN

    @classmethod
    def parse(cls, name: str) -> Role | None:
        return cls.__members__.get(name.upper())


@dataclass(frozen=True)
class MethodRule:
    required_role: Role
    allow_api_key: bool


def rule_for(method: descriptor.MethodDescriptor) -> MethodRule:
    options = method.GetOptions()
    access = options.Extensions[access_pb2.access]
    if access.required_role != access_pb2.ROLE_UNSPECIFIED:
        role = Role(access.required_role)
    elif options.idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS:
        role = Role.VIEWER
    else:
        role = Role.OPERATOR
    return MethodRule(required_role=role, allow_api_key=access.allow_api_key)


def rules_of(service: descriptor.ServiceDescriptor) -> dict[str, MethodRule]:
    """``{"/package.Service/Method": rule}`` for every method of ``service``."""
    return {f"/{service.full_name}/{m.name}": rule_for(m) for m in service.methods}
