"""A stopping server ends its subscriptions (Watch*) UNAVAILABLE at once, while a stream
that ends by itself keeps the grace period to finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from services.runtime.server import GrpcService, ServiceParts
from tests.harness import TEST_BUILD, channel_to, settings_for

SERVICE = "test.Streams"
TICK_S = 0.05
COUNT = 40  # CountTo's messages: 2 s of ticks, well inside the grace period


def _ticks(context: grpc.ServicerContext, limit: int | None) -> Iterator[bytes]:
    """A message per tick while the call is active, ``limit`` of them at most."""
    sent = 0
    while context.is_active() and (limit is None or sent < limit):
        sent += 1
        yield str(sent).encode()
        time.sleep(TICK_S)


def _register(server: grpc.Server) -> None:
    def handler(limit: int | None) -> Any:
        return grpc.unary_stream_rpc_method_handler(
            lambda _request, context: _ticks(context, limit),
            request_deserializer=bytes,
            response_serializer=bytes,
        )

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"WatchTicks": handler(None), "CountTo": handler(COUNT)}
            ),
        )
    )


def test_stop_ends_subscriptions_unavailable_and_lets_other_streams_finish(tmp_path):
    settings = settings_for("quality", tmp_path, MFG_SERVER__GRACE_PERIOD_S="20")
    service = GrpcService(settings, TEST_BUILD, ServiceParts(SERVICE, _register, {}))
    service.start()
    stopping = threading.Thread(target=service.stop)
    counted: list[int] = []
    try:
        with channel_to(service.port) as channel:
            watch: Any = channel.unary_stream(f"/{SERVICE}/WatchTicks", bytes, bytes)(b"")
            count: Any = channel.unary_stream(f"/{SERVICE}/CountTo", bytes, bytes)(b"")
            next(watch), next(count)  # both running
            counting = threading.Thread(target=lambda: counted.extend(int(m) for m in count))
            counting.start()
            stopping.start()
            with pytest.raises(grpc.RpcError) as ended:
                for _ in watch:
                    pass
            # The subscription ended at once, not after the grace period: the other
            # stream, two seconds long, is still going.
            assert counting.is_alive()
            counting.join(timeout=30)
    finally:
        stopping.join(timeout=30)
    assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
    assert counted == list(range(2, COUNT + 1)) and count.code() is grpc.StatusCode.OK
    assert not stopping.is_alive()
