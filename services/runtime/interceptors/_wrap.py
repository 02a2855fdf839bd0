"""Run any kind of gRPC method handler inside a per-call context manager.

A sync-server interceptor cannot see a call's outcome from ``intercept_service``
alone: it has to replace the handler's behaviour. Each interceptor here supplies a
``CallScope``, a context manager entered for the call; for response-streaming methods
it stays open while the stream is consumed, so it sees the stream's end or its error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import grpc

CallScope = Callable[[grpc.ServicerContext, str], AbstractContextManager[None]]


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None, method: str, scope: CallScope
) -> Any:
    """Return ``handler`` with its behaviour run inside ``scope(context, method)``."""
    if handler is None:
        return None
    if handler.response_streaming:
        stream_inner: Any = handler.unary_stream or handler.stream_stream

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scope(context, method):
                yield from stream_inner(request, context)

        return response_stream_handler(handler, streaming)

    unary_inner: Any = handler.unary_unary or handler.stream_unary

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        with scope(context, method):
            return unary_inner(request, context)

    factory = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return factory(unary, handler.request_deserializer, handler.response_serializer)


def response_stream_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
) -> Any:
    """A handler of ``handler``'s kind and messages that runs ``behaviour`` instead."""
    factory = (
        grpc.stream_stream_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_stream_rpc_method_handler
    )
    return factory(behaviour, handler.request_deserializer, handler.response_serializer)


class HandlerInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """A server interceptor defined by how it replaces each method's handler."""

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(handler, handler_call_details.method)


class ScopeInterceptor(HandlerInterceptor):
    """A server interceptor defined by its ``scope`` context manager."""

    def scope(self, context: grpc.ServicerContext, method: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        return wrap_handler(handler, method, self.scope)


def final_code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    """The status a finished call ended with, as the caller will see it."""
    code = context.code()  # type: ignore[attr-defined]  # present since grpcio 1.38
    if isinstance(code, grpc.StatusCode):
        return code
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
