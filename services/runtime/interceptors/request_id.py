"""Gives every call a request id and tells the caller which build answered.

The id comes from the caller's ``x-request-id`` (so one id follows a request through
the gateway and across services) or is generated; it is returned in the initial
metadata with ``x-service-version``, and set in the logging context for the call.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from services.runtime import context as call_context
from services.runtime.interceptors._wrap import ScopeInterceptor

REQUEST_ID = "x-request-id"
SERVICE_VERSION = "x-service-version"
# Ids go into logs and metadata: accept only a safe, bounded alphabet from callers.
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def incoming_request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID and isinstance(value, str) and _ACCEPTABLE_ID.match(value):
            return value
    return uuid.uuid4().hex


class RequestIdInterceptor(ScopeInterceptor):
    def __init__(self, service_version: str) -> None:
        self._version = service_version

    @contextmanager
    def scope(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        request_id = incoming_request_id(context)
        token = call_context.request_id.set(request_id)
        try:
            context.send_initial_metadata(
                ((REQUEST_ID, request_id), (SERVICE_VERSION, self._version))
            )
            yield
        finally:
            call_context.request_id.reset(token)
