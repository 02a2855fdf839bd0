"""Python SDK of the manufacturing AI suite: typed clients, safe defaults, typed errors.

    from manufacturing_sdk import SchedulingClient
    with SchedulingClient("localhost:8080", token=my_token) as client:
        reply = client.list_schedules(scheduling_service_pb2.ListSchedulesRequest())

Every client has a default deadline for unary calls, retries UNAVAILABLE only on
methods the contract marks free of side effects, sends a bearer token or API key with
every call, and raises ``ServiceError`` subclasses carrying the field violations.
"""

from manufacturing_sdk.alerts import follow_alerts
from manufacturing_sdk.channels import Tls
from manufacturing_sdk.clients import (
    AsyncMaintenanceClient,
    AsyncQualityClient,
    AsyncSchedulingClient,
    MaintenanceClient,
    QualityClient,
    SchedulingClient,
)
from manufacturing_sdk.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ServiceError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncMaintenanceClient",
    "AsyncQualityClient",
    "AsyncSchedulingClient",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "MaintenanceClient",
    "NotFoundError",
    "PermissionDeniedError",
    "QualityClient",
    "ResourceExhaustedError",
    "SchedulingClient",
    "ServiceError",
    "Tls",
    "UnauthenticatedError",
    "UnavailableError",
    "follow_alerts",
]
