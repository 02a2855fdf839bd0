"""Following the alert stream across disconnects, rollouts and replica changes.

``WatchAlerts`` hands every alert a cursor; a new call with ``resume_after`` set to the
last cursor seen delivers each alert raised since, once. ``follow_alerts`` does that
for the caller: when the stream breaks (UNAVAILABLE, a server shutting down) or ends,
it reconnects with backoff and resumes, so no alert is lost and none is seen twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from manufacturing.maintenance.v1 import maintenance_service_pb2 as pb

from manufacturing_sdk.clients import MaintenanceClient
from manufacturing_sdk.errors import UnavailableError

MAX_BACKOFF_S = 5.0


def follow_alerts(
    client: MaintenanceClient,
    request: pb.WatchAlertsRequest,
    *,
    give_up_after_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[pb.WatchAlertsResponse]:
    """Every alert matching ``request``, resuming after each disconnect.

    Raises UnavailableError once the service has been unreachable for
    ``give_up_after_s`` in a row; other errors (e.g. a malformed cursor) at once.
    """
    cursor = request.resume_after
    failing_since: float | None = None
    attempt = 0
    while True:
        resumed = pb.WatchAlertsRequest()
        resumed.CopyFrom(request)
        resumed.resume_after = cursor
        try:
            for reply in client.watch_alerts(resumed):
                failing_since, attempt = None, 0
                cursor = reply.cursor
                yield reply
        except UnavailableError:
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > give_up_after_s:
                raise
        attempt += 1
        sleep(min(MAX_BACKOFF_S, 0.1 * 2**attempt))
