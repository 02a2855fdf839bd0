"""The alert stream every replica publishes to and every WatchAlerts subscriber reads:
the shared event stream (services/runtime/event_stream.py) with alerts as its entries."""

from __future__ import annotations

from services.runtime.event_stream import EventStream as AlertStream
from services.runtime.event_stream import MemoryEventStream as MemoryAlertStream
from services.runtime.event_stream import RedisEventStream, valid_cursor

__all__ = ["AlertStream", "MemoryAlertStream", "RedisAlertStream", "valid_cursor"]


class RedisAlertStream(RedisEventStream):
    def __init__(self, url: str, key: str, timeout_s: float = 2.0) -> None:
        super().__init__(url, key, field=b"alert", name="alert stream", timeout_s=timeout_s)
