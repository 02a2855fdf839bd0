"""Typed errors: every failed call raises a subclass of ``ServiceError``.

They carry what the services put in ``google.rpc`` details: the request id to quote
when reporting a problem, and for INVALID_ARGUMENT the bad fields by path.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class ServiceError(Exception):
    """A call failed with ``code``; ``message`` is the service's explanation."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        request_id: str = "",
        field_violations: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id
        self.field_violations = dict(field_violations or {})

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        return f"{text} (request id {self.request_id})" if self.request_id else text


class InvalidArgumentError(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnauthenticatedError(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(ServiceError):
    """The service could not be reached or is shutting down; retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InternalError(ServiceError):
    """A fault in the service; quote ``request_id`` when reporting it."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[ServiceError]] = {
    kind.code: kind
    for kind in (
        InvalidArgumentError, NotFoundError, AlreadyExistsError, FailedPreconditionError,
        UnauthenticatedError, PermissionDeniedError, ResourceExhaustedError, UnavailableError,
        DeadlineExceededError, InternalError,
    )
}  # fmt: skip


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """The typed error for a failed call, with its google.rpc details unpacked."""
    call: grpc.Call = error  # type: ignore[assignment]  # grpc's errors are also calls
    code = call.code()
    message = call.details() or ""
    request_id = ""
    violations: dict[str, str] = {}
    status = rpc_status.from_call(call)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.update({v.field: v.description for v in bad_request.field_violations})
        elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            info = error_details_pb2.RequestInfo()
            detail.Unpack(info)
            request_id = info.request_id
    for key, value in call.initial_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and not request_id:
            request_id = value
    kind = _BY_CODE.get(code, ServiceError)
    return kind(message, code=code, request_id=request_id, field_violations=violations)
