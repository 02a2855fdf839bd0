"""Tells watchers of a characteristic that new measurements were stored.

In-process: one replica's watchers hear about that replica's writes (a multi-replica
deployment would carry the same signal over Redis). Waits are bounded so a streaming
handler can check for cancellation between them.
"""

from __future__ import annotations

import threading


class MeasurementFeed:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._totals: dict[str, int] = {}

    def publish(self, characteristic: str, total: int) -> None:
        with self._changed:
            self._totals[characteristic] = max(total, self._totals.get(characteristic, 0))
            self._changed.notify_all()

    def wait(self, characteristic: str, seen: int, timeout_s: float) -> int:
        """The characteristic's total once it exceeds ``seen``, or ``seen`` on timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._totals.get(characteristic, 0) > seen, timeout=timeout_s
            )
            return max(seen, self._totals.get(characteristic, 0))
