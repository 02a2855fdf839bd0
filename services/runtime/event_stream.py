"""An ordered event stream every replica publishes to and every subscriber reads.

Redis Streams when ``redis.url`` is set: XADD appends with a server-assigned, ordered id
(the cursor); a subscriber XREADs strictly after the last cursor it saw, so resuming on
any replica delivers each later event exactly once and in order. Reads block in bounded
slices (``timeout_s``) so a handler notices a departed client or a stopping server.
Without Redis an in-process stream with the same cursor format serves one replica.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from typing import Protocol, cast

import redis

from services.runtime.cache import redis_answers
from services.runtime.errors import Unavailable

RETAINED = 100_000
_CURSOR = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def valid_cursor(cursor: str) -> bool:
    return bool(_CURSOR.match(cursor))


class EventStream(Protocol):
    def publish(self, payload: bytes) -> str: ...

    def read(self, after: str, timeout_s: float, count: int = 100) -> list[tuple[str, bytes]]:
        """Entries after cursor ``after``, waiting up to ``timeout_s`` for the first."""
        ...

    def tail(self) -> str:
        """Cursor of the newest entry ("0-0" when empty): reading after it waits for new ones."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class RedisEventStream:
    """``field`` names the payload inside each entry; ``name`` says what the stream
    carries in errors ("alert stream")."""

    def __init__(self, url: str, key: str, *, field: bytes, name: str, timeout_s: float = 2.0):
        self._key = key
        self._field = field
        self._name = name
        self._closed = False
        # The socket timeout must outlast the longest XREAD BLOCK we issue.
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s + 5.0, socket_connect_timeout=timeout_s
        )

    def publish(self, payload: bytes) -> str:
        try:
            entry = self._client.xadd(
                self._key, {self._field: payload}, maxlen=RETAINED, approximate=True
            )
        except redis.RedisError as error:
            raise Unavailable(f"{self._name} unavailable: {error}") from error
        return _text(entry)

    def read(self, after: str, timeout_s: float, count: int = 100) -> list[tuple[str, bytes]]:
        try:
            reply = self._client.xread(
                {self._key: after}, count=count, block=max(1, int(timeout_s * 1000))
            )
        except redis.RedisError as error:
            raise Unavailable(f"{self._name} unavailable: {error}") from error
        except (OSError, ValueError) as error:
            # A subscriber blocked in XREAD while the service stops sees its socket closed
            # under it ("I/O operation on closed file"): the stop, not a fault.
            if not self._closed:
                raise
            raise Unavailable(f"{self._name} closed: the service is stopping") from error
        entries: list[tuple[str, bytes]] = []
        for _stream, items in cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []
        ):
            entries.extend((_text(entry_id), fields[self._field]) for entry_id, fields in items)
        return entries

    def tail(self) -> str:
        try:
            newest = cast(list[tuple[bytes, object]], self._client.xrevrange(self._key, count=1))
        except redis.RedisError as error:
            raise Unavailable(f"{self._name} unavailable: {error}") from error
        return _text(newest[0][0]) if newest else "0-0"

    def ping(self) -> bool:
        return redis_answers(self._client)

    def close(self) -> None:
        self._closed = True
        self._client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _order(cursor: str) -> tuple[int, int]:
    millis, _, sequence = cursor.partition("-")
    return int(millis), int(sequence or 0)


class MemoryEventStream:
    """In-process stream for a single replica; cursors look like Redis ids ("N-0")."""

    def __init__(self) -> None:
        self._entries: deque[tuple[int, bytes]] = deque(maxlen=RETAINED)
        self._next = 1
        self._changed = threading.Condition()

    def publish(self, payload: bytes) -> str:
        with self._changed:
            number = self._next
            self._next += 1
            self._entries.append((number, bytes(payload)))
            self._changed.notify_all()
        return f"{number}-0"

    def read(self, after: str, timeout_s: float, count: int = 100) -> list[tuple[str, bytes]]:
        after_number = _order(after)[0]
        with self._changed:
            self._changed.wait_for(lambda: self._next - 1 > after_number, timeout=timeout_s)
            return [
                (f"{number}-0", payload)
                for number, payload in self._entries
                if number > after_number
            ][:count]

    def tail(self) -> str:
        with self._changed:
            return f"{self._next - 1}-0"

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._changed:
            self._changed.notify_all()
