"""One structured access-log line per call: method, status, duration, peer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from services.runtime.interceptors._wrap import ScopeInterceptor, final_code

logger = logging.getLogger("access")


class AccessLogInterceptor(ScopeInterceptor):
    @contextmanager
    def scope(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        started = time.perf_counter()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            code = final_code(context, failed)
            logger.info(
                "call",
                extra={
                    "grpc_method": method,
                    "grpc_code": code.name,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "peer": context.peer(),
                },
            )
