"""Maps exceptions to gRPC status codes with google.rpc details.

Domain errors become their status code (field violations travel as
``google.rpc.BadRequest``); any other exception becomes INTERNAL carrying only the
request id, while the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.runtime import context as call_context
from services.runtime import errors
from services.runtime.interceptors._wrap import ScopeInterceptor

logger = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def rich_status(code: grpc.StatusCode, message: str, *details: Message) -> grpc.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    numeric = code.value[0]
    return rpc_status.to_status(status_pb2.Status(code=numeric, message=message, details=packed))


def status_for(error: errors.ServiceError) -> grpc.Status:
    code = next(
        (status for kind, status in STATUS_OF.items() if isinstance(error, kind)),
        grpc.StatusCode.UNKNOWN,
    )
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        return rich_status(code, str(error), bad_request)
    return rich_status(code, str(error))


def internal_status() -> grpc.Status:
    request_id = call_context.request_id.get()
    return rich_status(
        grpc.StatusCode.INTERNAL,
        f"internal error; quote request id {request_id} when reporting it",
        error_details_pb2.RequestInfo(request_id=request_id),
    )


class ErrorMappingInterceptor(ScopeInterceptor):
    @contextmanager
    def scope(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        try:
            yield
        except errors.ServiceError as error:
            context.abort_with_status(status_for(error))
        except Exception:
            # A handler that already aborted raised grpc's own exception: let it pass.
            if context.code() not in (None, grpc.StatusCode.OK):  # type: ignore[attr-defined]
                raise
            logger.exception("unexpected error in %s", method)
            context.abort_with_status(internal_status())
