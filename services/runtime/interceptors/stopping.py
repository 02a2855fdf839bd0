"""Ends subscriptions UNAVAILABLE once the server stops taking calls.

A subscription (a ``Watch*`` method streaming its replies, WatchAlerts, WatchViolations:
services/runtime/subscriptions.py) streams until its caller cancels it. Neither the
GOAWAY of max-connection-age nor that of a stopping server ends an open stream; they
only keep new ones off the connection. Left alone, a subscription would hold the stop for the
whole grace period and then be cut. Instead, once the server stops taking calls, its
handler is told the call is over: ``context.is_active()`` turns False (such handlers
poll it between waits to notice departed callers), and the caller gets UNAVAILABLE,
the code callers retry. Through the gateway the retry reaches a server still in
rotation, and a resumable subscription resumes after the last message it received.

Streams that end by themselves (SolveStream, InspectStream) keep the grace period to
finish, as unary calls do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

from services.runtime.errors import Unavailable
from services.runtime.interceptors._wrap import HandlerInterceptor, response_stream_handler
from services.runtime.subscriptions import is_subscription


class _StopAwareContext:
    """The handler's context, inactive once ``stopping`` is set."""

    def __init__(self, context: grpc.ServicerContext, stopping: threading.Event) -> None:
        self._context = context
        self._stopping = stopping
        self.ended_by_stop = False

    def is_active(self) -> bool:
        if self._stopping.is_set():
            self.ended_by_stop = True
            return False
        return self._context.is_active()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class EndStreamsOnStopInterceptor(HandlerInterceptor):
    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        if not is_subscription(method, handler.response_streaming):
            return handler
        inner: Any = handler.unary_stream or handler.stream_stream
        stopping = self._stopping

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            aware = _StopAwareContext(context, stopping)
            yield from inner(request, aware)
            if aware.ended_by_stop:
                raise Unavailable("the server is stopping: call again to reach another one")

        return response_stream_handler(handler, streaming)
