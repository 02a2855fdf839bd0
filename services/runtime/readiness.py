"""Keeps grpc.health.v1 in step with what the service depends on.

``""`` reports liveness: SERVING as long as the process serves. Each full service name
reports readiness: SERVING only while every check passes (database reachable, models
loaded), re-evaluated on an interval, so probes and Envoy's health checks follow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from grpc_health.v1 import health, health_pb2

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

ReadinessCheck = Callable[[], bool]


class Readiness:
    def __init__(
        self,
        servicer: health.HealthServicer,
        service_names: Sequence[str],
        checks: Mapping[str, ReadinessCheck],
        interval_s: float,
    ) -> None:
        self._servicer = servicer
        self._names = tuple(service_names)
        self._checks = dict(checks)
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready: bool | None = None
        for name in self._names:
            servicer.set(name, NOT_SERVING)

    def failing_checks(self) -> list[str]:
        failing = []
        for name, check in self._checks.items():
            try:
                passed = check()
            except Exception:
                logger.exception("readiness check %s raised", name)
                passed = False
            if not passed:
                failing.append(name)
        return failing

    def refresh(self) -> bool:
        """Run every check once and publish the result; returns readiness."""
        failing = self.failing_checks()
        ready = not failing
        if ready != self._ready:
            if ready:
                logger.info("ready", extra={"services": list(self._names)})
            elif self._ready is None:  # starting: its dependencies may need a moment
                logger.info("not ready yet", extra={"failing_checks": failing})
            else:
                logger.warning("not ready", extra={"failing_checks": failing})
        self._ready = ready
        for name in self._names:
            self._servicer.set(name, SERVING if ready else NOT_SERVING)
        return ready

    def start(self) -> None:
        self._servicer.set("", SERVING)
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="readiness", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.refresh()

    def stop(self) -> None:
        """Stop re-checking and report everything NOT_SERVING from now on."""
        self._stopped.set()
        self._servicer.enter_graceful_shutdown()
        if self._thread is not None:
            self._thread.join(timeout=self._interval_s + 5)
