"""Gives a unary call whose caller set no deadline the server's default one.

Behind the gateway every unary call arrives with a deadline (the route's cap, sent
upstream as grpc-timeout). A caller reaching a service directly may send none, and
then nothing would bound the work it starts. gRPC cannot set a deadline from the
server side, so the handler gets a context that behaves as if the caller had set
``server.default_deadline_s``: ``time_remaining()`` counts down to it (work that sizes
itself by it, as Solve's time limit does, fits inside), ``is_active()`` turns False at
it (work that polls it stops), and a call still running then is answered
DEADLINE_EXCEEDED with its result discarded, as the caller's own deadline would have
it. A handler that neither sizes its work nor polls cannot be interrupted (Python
threads cannot be), but its late reply is still DEADLINE_EXCEEDED.

Streams keep only their caller's deadline, as at the gateway: uploads and
subscriptions may rightly outlast any fixed one.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from services.runtime.errors import DeadlineExceeded
from services.runtime.interceptors._wrap import HandlerInterceptor

# grpcio reports a call without a deadline as ~9.2e18 s remaining (an infinite one);
# no caller's deadline is decades away.
_NO_DEADLINE_S = 1e9


class _DefaultDeadlineContext:
    """The handler's context, expiring at ``deadline`` (on ``time.monotonic``)."""

    def __init__(self, context: grpc.ServicerContext, deadline: float) -> None:
        self._context = context
        self._deadline = deadline

    def time_remaining(self) -> float:
        return max(self._deadline - time.monotonic(), 0.0)

    def is_active(self) -> bool:
        return self.time_remaining() > 0 and self._context.is_active()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class DefaultDeadlineInterceptor(HandlerInterceptor):
    def __init__(self, default_s: float) -> None:
        self._default_s = default_s

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        if handler.request_streaming or handler.response_streaming:
            return handler
        inner: Any = handler.unary_unary
        default_s = self._default_s
        expired = f"the call set no deadline and ran past the server's default of {default_s:g} s"

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            if context.time_remaining() < _NO_DEADLINE_S:
                return inner(request, context)
            bounded = _DefaultDeadlineContext(context, time.monotonic() + default_s)
            try:
                response = inner(request, bounded)
            except Exception as error:
                if bounded.time_remaining() > 0:
                    raise
                raise DeadlineExceeded(expired) from error
            if bounded.time_remaining() == 0:
                raise DeadlineExceeded(expired)
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )
