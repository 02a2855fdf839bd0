"""Which calls are subscriptions: response streams that last until their caller cancels.

By the suite's naming, a method that streams its replies and whose name starts with
``Watch`` (WatchAlerts, WatchViolations). Their handlers poll ``context.is_active()``
between waits, so a stopping server can end them at once, UNAVAILABLE, and their callers
resume on another server (interceptors/stopping.py); the rollout controller therefore
does not wait for them when it drains a color (services/rollout/drain.py). One rule
here, so the server that ends them and the controller that ignores them agree.

grpc.health.v1's Watch also lasts until its caller cancels, but grpcio's health servicer
never polls ``is_active()``: a stop cannot end it early, so it counts as an ordinary call
(a drain waits for it; the stop gives it the grace period).
"""

from __future__ import annotations

_HEALTH_WATCH = "/grpc.health.v1.Health/Watch"


def is_subscription(method: str, response_streaming: bool) -> bool:
    """``method`` is the call's path, ``/package.Service/Method``."""
    name = method.rpartition("/")[2]
    return response_streaming and name.startswith("Watch") and method != _HEALTH_WATCH
