"""When a color that lost its weight is drained, so that stopping it fails no call.

Drained means both:

- no new call reaches it: its cluster's ``upstream_rq_total`` in Envoy has not risen for
  ``quiet_s`` (through the weighted route every new call goes elsewhere at once; a
  caller bypassing the gateway moves with max-connection-age's GOAWAY);
- no call it must finish is in flight. Envoy counts an open stream in flight like any
  call, and a subscription (services/runtime/subscriptions.py) stays open until its
  caller cancels it, so Envoy alone would wait for it in vain. Each service process
  counts its calls in flight per method (``grpc_server_in_flight`` on its metrics
  endpoint, services/runtime/metrics.py); every call but a subscription holds the
  color. Subscriptions do not: the stop ends them at once, UNAVAILABLE, and their
  callers resume on the live color.

Where the platform cannot reach the color's metrics, Envoy's active requests to the
cluster stand in for the held calls, subscriptions included; the drain timeout, the
safety net either way, then ends the wait for an open subscription.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from services.runtime.subscriptions import is_subscription

IN_FLIGHT_METRIC = "grpc_server_in_flight"
_STREAMING_TYPES = frozenset({"server_stream", "bidi_stream"})


class Upstream(Protocol):
    """What the drain reads from the gateway (services/rollout/envoy_admin.py)."""

    def upstream_requests(self, cluster: str) -> tuple[int, int]:
        """(active, total) requests Envoy sent to ``cluster``."""
        ...


class MetricsError(RuntimeError):
    """A color's metrics endpoint did not answer with its calls in flight."""


@dataclass(frozen=True)
class InFlight:
    """Calls a color is serving now, summed over its replicas."""

    held: int  # calls a stop would have to wait for (or cut)
    subscriptions: int  # streams a stop ends at once; their callers resume elsewhere


def read_in_flight(ports: Sequence[int], timeout: float = 2.0) -> InFlight:
    """The calls in flight on the replicas whose metrics listen on ``ports`` (127.0.0.1)."""
    held = subscriptions = 0
    for port in ports:
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                text = response.read().decode("utf-8")
        except (urllib.error.URLError, OSError) as error:
            raise MetricsError(f"{url}: {error}") from error
        families = [f for f in text_string_to_metric_families(text) if f.name == IN_FLIGHT_METRIC]
        if not families:
            raise MetricsError(f"{url}: no {IN_FLIGHT_METRIC}")
        for sample in families[0].samples:
            labels = sample.labels
            method = f"/{labels['grpc_service']}/{labels['grpc_method']}"
            calls = int(sample.value)
            if is_subscription(method, labels["grpc_type"] in _STREAMING_TYPES):
                subscriptions += calls
            else:
                held += calls
    return InFlight(held, subscriptions)


@dataclass
class DrainResult:
    drained: bool
    details: dict[str, Any] = field(default_factory=dict)  # for the rollout's history


def wait_drained(
    gateway: Upstream,
    cluster: str,
    in_flight: Callable[[], InFlight] | None,
    *,
    quiet_s: float,
    timeout_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DrainResult:
    """Until ``cluster``'s color is drained (see the module) or ``timeout_s`` passed.

    ``in_flight`` reads the color's own metrics; None (or once it fails): judge by
    Envoy's active requests alone.
    """
    deadline = clock() + timeout_s
    _, total = gateway.upstream_requests(cluster)
    quiet_since = clock()
    unreadable = ""
    while True:
        sleep(poll_s)
        # The color's count first: a call it has not seen yet was already counted by
        # Envoy, read second, and restarts the quiet window.
        calls = None
        if in_flight is not None:
            try:
                calls = in_flight()
            except MetricsError as error:
                in_flight, unreadable = None, str(error)
        active, now_total = gateway.upstream_requests(cluster)
        held = active if calls is None else calls.held
        details: dict[str, Any] = {"cluster": cluster, "upstream_rq_total": now_total}
        if calls is None:
            details["active"] = active
        else:
            details.update(held=calls.held, open_subscriptions=calls.subscriptions)
        if unreadable:
            details["metrics_unreadable"] = unreadable
        if now_total != total:
            total, quiet_since = now_total, clock()
        elif held == 0 and clock() - quiet_since >= quiet_s:
            return DrainResult(True, details)
        if clock() > deadline:
            return DrainResult(False, details)
