"""Tells watchers of a characteristic that new measurements were stored, on every replica.

Each RecordMeasurements publishes "characteristic C now has N subgroups" to one event
stream (Redis Streams when ``redis.url`` is set, so a watcher on any replica hears of
writes through any other; in-process otherwise). A watcher subscribes from the stream's
tail *before* reading how many subgroups are stored, so no write falls between the two.
The subgroups themselves are read from the database, which every replica shares; each
watcher then judges them with its own chart and rules. Waits are bounded so a streaming
handler can check for cancellation between them.
"""

from __future__ import annotations

import json
import logging

from services.runtime.errors import Unavailable
from services.runtime.event_stream import EventStream

logger = logging.getLogger(__name__)


class MeasurementFeed:
    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    def publish(self, characteristic: str, total: int) -> None:
        """Best effort: the subgroups are already stored, and a watcher that misses this
        signal judges them with the next one, which carries a higher total."""
        payload = json.dumps({"characteristic": characteristic, "total": total}).encode()
        try:
            self._stream.publish(payload)
        except Unavailable:
            logger.warning("measurement feed unavailable; %s watchers hear later", characteristic)

    def subscribe(self, characteristic: str) -> Subscription:
        return Subscription(self._stream, characteristic, self._stream.tail())

    def close(self) -> None:
        self._stream.close()


class Subscription:
    """One watcher's position in the feed."""

    def __init__(self, stream: EventStream, characteristic: str, cursor: str) -> None:
        self._stream = stream
        self._characteristic = characteristic
        self._cursor = cursor

    def wait(self, seen: int, timeout_s: float) -> int:
        """The characteristic's total once a signal says it exceeds ``seen``, or ``seen``
        when none arrives within ``timeout_s``."""
        total = seen
        for cursor, payload in self._stream.read(self._cursor, timeout_s):
            self._cursor = cursor
            signal = json.loads(payload)
            if signal["characteristic"] == self._characteristic:
                total = max(total, int(signal["total"]))
        return total
