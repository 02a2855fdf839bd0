"""Caps how many messages a caller may send on one client stream.

A stream that goes on past the cap is ended with RESOURCE_EXHAUSTED instead of
holding a worker and memory for as long as the caller likes; callers split long
uploads into several calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from services.runtime.errors import ResourceExhausted
from services.runtime.interceptors._wrap import HandlerInterceptor


def _counted(requests: Iterator[Any], limit: int) -> Iterator[Any]:
    for count, request in enumerate(requests, start=1):
        if count > limit:
            raise ResourceExhausted(f"a stream may carry at most {limit} messages; split it")
        yield request


class StreamLimitInterceptor(HandlerInterceptor):
    def __init__(self, max_messages: int) -> None:
        self._max = max_messages

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        if not handler.request_streaming:
            return handler
        limit = self._max
        if handler.response_streaming:
            bidi: Any = handler.stream_stream

            def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                return bidi(_counted(requests, limit), context)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer
            )
        upload: Any = handler.stream_unary

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return upload(_counted(requests, limit), context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )
