"""Counts calls by method and status code, and times them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import grpc

from services.runtime.interceptors._wrap import HandlerInterceptor, final_code, wrap_handler
from services.runtime.metrics import ServiceMetrics


def _call_type(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


class MetricsInterceptor(HandlerInterceptor):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> Any:
        # "/package.Service/Method"
        service, _, name = method.lstrip("/").rpartition("/")
        labels = (_call_type(handler), service, name)

        @contextmanager
        def scope(context: grpc.ServicerContext, _method: str) -> Iterator[None]:
            metrics = self._metrics
            metrics.started.labels(*labels).inc()
            in_flight = metrics.in_flight.labels(*labels)
            in_flight.inc()
            started = time.perf_counter()
            failed = False
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                in_flight.dec()
                metrics.latency.labels(*labels).observe(time.perf_counter() - started)
                metrics.handled.labels(*labels, final_code(context, failed).name).inc()

        scope_factory: Callable[[grpc.ServicerContext, str], AbstractContextManager[None]] = scope
        return wrap_handler(handler, method, scope_factory)
