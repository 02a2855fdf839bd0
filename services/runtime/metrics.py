"""Prometheus metrics of one service process, served on its own HTTP port.

Call metrics follow the names of grpc-ecosystem's go-grpc-prometheus
(``grpc_server_handled_total`` etc.), so existing dashboards and alert rules fit.
Domain code creates its own counters unregistered and hands them over through
``ServiceParts.collectors``; this module registers them in the process's registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Seconds; from sub-millisecond health checks to solver calls of a minute.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)


class ModelInfo(Collector):
    """``model_info{service,model,version} 1`` for each model serving now, read at scrape
    time so a promotion shows at once."""

    def __init__(self, service: str, versions: Callable[[], Mapping[str, str]]) -> None:
        self._service = service
        self._versions = versions

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; the versions come at scrape time

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "model_info", "Always 1; labels say which model versions serve.",
            labels=["service", "model", "version"],
        )  # fmt: skip
        for model, version in sorted(self._versions().items()):
            family.add_metric([self._service, model, version], 1)
        yield family


class ServiceMetrics:
    def __init__(self, *, service: str, version: str, git_revision: str, color: str) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes...: alerts and `ops check`.
        ProcessCollector(registry=self.registry)
        calls = ("grpc_type", "grpc_service", "grpc_method")
        self.started = Counter(
            "grpc_server_started_total", "Calls started.", calls, registry=self.registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Calls finished, by status code.",
            (*calls, "grpc_code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of a call to its status.",
            calls,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight", "Calls being served now.", calls, registry=self.registry
        )
        build = Gauge(
            "service_build_info",
            "Always 1; labels say which build runs.",
            ("service", "version", "git_revision", "color"),
            registry=self.registry,
        )
        build.labels(service, version, git_revision, color).set(1)
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def register(self, collectors: Iterable[Collector]) -> None:
        for collector in collectors:
            self.registry.register(collector)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP in a daemon thread; returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        logger.info("metrics", extra={"address": f"{host}:{bound}"})
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
