"""Every RPC of every service, fed random and malformed requests: never INTERNAL.

Requests come from the contract's descriptors (tests/fuzz/messages.py), so new
methods and fields are fuzzed without writing anything here. A method may refuse a
request with any status a caller can act on; INTERNAL and UNKNOWN are bugs, and so is
a call that hangs past its deadline. The number of inputs tried is printed (-s).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack

import grpc
import pytest
from google.protobuf import descriptor, descriptor_pool, message, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.runtime.server import suite_service_names
from tests.fuzz.messages import messages
from tests.harness import serve, settings_for

BUGS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
CALL_TIMEOUT_S = 10
# A response stream may rightly stay open with nothing to send (a watch): it is read for
# this long, and its deadline passing then is no fault.
STREAM_TIMEOUT_S = 1.5
EXAMPLES = 15
MAX_STREAM_REPLIES = 3
tried: dict[str, int] = {}


def method_descriptor(path: str) -> descriptor.MethodDescriptor:
    pool = descriptor_pool.Default()
    return pool.FindMethodByName(path.strip("/").replace("/", "."))


def all_methods() -> list[tuple[str, str]]:
    pool = descriptor_pool.Default()
    found = []
    for full_name in suite_service_names():
        service = pool.FindServiceByName(full_name)
        domain = full_name.split(".")[1]
        found += [(domain, f"/{full_name}/{m.name}") for m in service.methods]
    return found


@pytest.fixture(scope="module")
def channels(tmp_path_factory) -> Iterator[dict[str, grpc.Channel]]:
    with ExitStack() as stack:
        opened = {}
        for domain in ("scheduling", "quality", "maintenance"):
            service = stack.enter_context(
                serve(settings_for(domain, tmp_path_factory.mktemp(domain)))
            )
            opened[domain] = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{service.port}"))
        yield opened
    print(f"\nfuzzed inputs: {sum(tried.values())} over {len(tried)} methods")


def call(channel: grpc.Channel, path: str, requests: list[message.Message]) -> grpc.StatusCode:
    """Make the call the way its kind needs; the status it ended with."""
    method = method_descriptor(path)
    parse = message_factory.GetMessageClass(method.output_type).FromString
    serialize = type(requests[0]).SerializeToString
    try:
        if method.client_streaming and method.server_streaming:
            replies = channel.stream_stream(path, serialize, parse)(
                iter(requests), timeout=STREAM_TIMEOUT_S
            )
        elif method.client_streaming:
            channel.stream_unary(path, serialize, parse)(iter(requests), timeout=CALL_TIMEOUT_S)
            return grpc.StatusCode.OK
        elif method.server_streaming:
            replies = channel.unary_stream(path, serialize, parse)(
                requests[0], timeout=STREAM_TIMEOUT_S
            )
        else:
            channel.unary_unary(path, serialize, parse)(requests[0], timeout=CALL_TIMEOUT_S)
            return grpc.StatusCode.OK
        list(itertools.islice(replies, MAX_STREAM_REPLIES))
        replies.cancel()
    except grpc.RpcError as error:
        if method.server_streaming and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK  # still open when the reading time ran out
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("domain", "path"), all_methods())
def test_no_request_makes_a_method_fail_internally(channels, domain, path):
    request_lists = st.lists(messages(method_descriptor(path).input_type), min_size=1, max_size=3)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(request_lists)
    def check(requests):
        tried[path] = tried.get(path, 0) + 1
        code = call(channels[domain], path, requests)
        assert code not in BUGS, f"{path} answered {code.name} to {requests!r}"
        # A unary or client-stream call still unanswered after CALL_TIMEOUT_S hangs.
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{path} hung on {requests!r}"

    check()
