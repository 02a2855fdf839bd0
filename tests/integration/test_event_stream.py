"""The Redis event stream when the service stops under a blocked subscriber."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from services.runtime.errors import Unavailable
from services.runtime.event_stream import RedisEventStream

pytestmark = pytest.mark.redis


def test_close_during_a_blocked_read_ends_it_as_unavailable(redis_url: str) -> None:
    stream = RedisEventStream(
        redis_url, f"t_{uuid.uuid4().hex[:8]}", field=b"payload", name="test stream"
    )
    outcome: list[BaseException | list[tuple[str, bytes]]] = []

    def subscriber() -> None:
        try:
            outcome.append(stream.read("0-0", timeout_s=5.0))
        except BaseException as error:  # the assertion below says which
            outcome.append(error)

    reader = threading.Thread(target=subscriber)
    reader.start()
    time.sleep(0.3)  # let XREAD block on the empty stream
    stream.close()
    reader.join(timeout=10)

    assert not reader.is_alive()
    [result] = outcome
    assert isinstance(result, Unavailable), repr(result)
    assert "stopping" in str(result)
