"""The shared runtime on a real server: health, error mapping, request ids, access log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.runtime.server import GrpcService, ServiceParts
from tests.harness import TEST_BUILD, channel_to, serve, settings_for, wait_for_status

SERVICE_NAME = "manufacturing.scheduling.v1.SchedulingService"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_of(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


PROBE = "test.Probe"


def _probe_handlers() -> grpc.GenericRpcHandler:
    """A tiny service for testing the runtime apart from any domain."""

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise RuntimeError("disk on fire")

    def count(requests, context: grpc.ServicerContext) -> bytes:
        return str(sum(1 for _ in requests)).encode()

    def remaining(request: bytes, context: grpc.ServicerContext) -> bytes:
        return str(context.time_remaining()).encode()

    def work(request: bytes, context: grpc.ServicerContext) -> bytes:
        """Long work that stops when the call is over, as solvers and loops do."""
        while context.is_active():
            time.sleep(0.02)
        return b"stopped"

    return grpc.method_handlers_generic_handler(
        PROBE,
        {
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Count": grpc.stream_unary_rpc_method_handler(count),
            "Remaining": grpc.unary_unary_rpc_method_handler(remaining),
            "Work": grpc.unary_unary_rpc_method_handler(work),
        },
    )


@contextmanager
def probe_service(
    tmp_path, ready: threading.Event | None = None, **environ: str
) -> Iterator[GrpcService]:
    """A server of the probe service whose readiness the test controls."""
    handlers = _probe_handlers()
    parts = ServiceParts(
        service_name=PROBE,
        register=lambda server: server.add_generic_rpc_handlers((handlers,)),
        readiness_checks={"flag": ready.is_set} if ready is not None else {},
    )
    service = GrpcService(settings_for("quality", tmp_path, **environ), TEST_BUILD, parts)
    service.start()
    try:
        yield service
    finally:
        service.stop(grace_s=1, delay_s=0)


def test_readiness_follows_dependencies_while_liveness_stays_serving(tmp_path):
    ready = threading.Event()
    with probe_service(tmp_path, ready) as service, channel_to(service.port) as channel:
        assert health_of(channel, "") == SERVING
        assert health_of(channel, PROBE) == NOT_SERVING
        ready.set()
        wait_for_status(channel, PROBE, SERVING)
        assert health_of(channel, PROBE) == SERVING
        ready.clear()  # the dependency stops being usable
        wait_for_status(channel, PROBE, NOT_SERVING)
        assert health_of(channel, "") == SERVING


def test_unreachable_database_keeps_the_service_not_serving(tmp_path):
    settings = settings_for(
        "scheduling",
        tmp_path,
        DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/test",
        MFG_DATABASE__CONNECT_TIMEOUT_S="1",
    )
    with serve(settings, migrated=False) as service, channel_to(service.port) as channel:
        assert health_of(channel, "") == SERVING
        assert health_of(channel, SERVICE_NAME) == NOT_SERVING


def test_embedded_database_makes_the_service_ready(scheduling, scheduling_channel):
    assert health_of(scheduling_channel, SERVICE_NAME) == SERVING


def test_stop_turns_every_status_not_serving_before_closing(tmp_path):
    ready = threading.Event()
    ready.set()
    with probe_service(tmp_path, ready) as service, channel_to(service.port) as channel:
        wait_for_status(channel, PROBE, SERVING)
        stopper = threading.Thread(target=service.stop, kwargs={"grace_s": 1, "delay_s": 1.0})
        stopper.start()
        # During the delay the server still answers, with every status NOT_SERVING.
        wait_for_status(channel, "", NOT_SERVING)
        assert health_of(channel, PROBE) == NOT_SERVING
        stopper.join(timeout=10)
        assert not stopper.is_alive()


def test_unexpected_error_is_internal_with_request_id_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with (
        probe_service(tmp_path) as service,
        channel_to(service.port) as channel,
    ):
        fail = channel.unary_unary(f"/{PROBE}/Fail", None, None)
        with pytest.raises(grpc.RpcError) as caught:
            fail(b"", metadata=(("x-request-id", "trace-42"),))
    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "trace-42" in str(error.details())
    assert "disk on fire" not in str(error.details())  # no internals leak to the caller
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = error_details_pb2.RequestInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert info.request_id == "trace-42"
    failures = [r for r in caplog.records if r.exc_info]
    assert failures and "disk on fire" in str(failures[0].exc_info[1])
    access = [r for r in caplog.records if r.name == "access"]
    assert access[-1].grpc_code == "INTERNAL"
    assert access[-1].grpc_method == f"/{PROBE}/Fail"


def test_generated_request_id_when_caller_sends_none_or_garbage(scheduling_stub):
    for metadata in ((), (("x-request-id", "bad id with spaces"),)):
        _, call = scheduling_stub.GetServiceInfo.with_call(
            pb.GetServiceInfoRequest(), metadata=metadata
        )
        request_id = dict(call.initial_metadata())["x-request-id"]
        assert len(request_id) == 32 and request_id.isalnum()


def test_access_log_line_per_call(scheduling_stub, caplog):
    caplog.set_level(logging.INFO, logger="access")
    with pytest.raises(grpc.RpcError):
        scheduling_stub.GetSchedule(
            pb.GetScheduleRequest(id="missing"), metadata=[("x-request-id", "r-1")]
        )
    lines = [r for r in caplog.records if r.name == "access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.grpc_method, line.grpc_code) == (
        "/manufacturing.scheduling.v1.SchedulingService/GetSchedule",
        "NOT_FOUND",
    )
    assert line.duration_ms >= 0 and line.peer


def test_reflection_lists_the_whole_suite(scheduling_channel):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(scheduling_channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in next(replies).list_services_response.service}
    assert {
        "manufacturing.scheduling.v1.SchedulingService",
        "manufacturing.quality.v1.QualityService",
        "manufacturing.maintenance.v1.MaintenanceService",
        "grpc.health.v1.Health",
    } <= names


def test_overload_is_answered_resource_exhausted(tmp_path):
    settings = settings_for("scheduling", tmp_path, MFG_SERVER__MAX_CONCURRENT_RPCS="2")
    with serve(settings) as service, channel_to(service.port) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watches = [
            health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30) for _ in range(2)
        ]
        for watch in watches:  # both long-lived calls are now open on the server
            assert next(watch).status == SERVING
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetServiceInfo(pb.GetServiceInfoRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for watch in watches:
            watch.cancel()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # capacity comes back once they are gone
            try:
                stub.GetServiceInfo(pb.GetServiceInfoRequest(), timeout=5)
                break
            except grpc.RpcError:
                time.sleep(0.05)
        else:
            raise AssertionError("capacity did not come back")


def test_overlong_client_stream_is_ended_resource_exhausted(tmp_path):
    with (
        probe_service(tmp_path, MFG_SERVER__MAX_STREAM_MESSAGES="3") as service,
        channel_to(service.port) as channel,
    ):
        count = channel.stream_unary(f"/{PROBE}/Count", None, None)
        assert count(iter([b"x"] * 3), timeout=10) == b"3"  # at the cap
        with pytest.raises(grpc.RpcError) as caught:
            count(iter([b"x"] * 4), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 3 messages" in str(caught.value.details())


def test_a_unary_call_without_a_deadline_gets_the_servers_default(tmp_path):
    with (
        probe_service(tmp_path, MFG_SERVER__DEFAULT_DEADLINE_S="0.5") as service,
        channel_to(service.port) as channel,
    ):
        remaining = channel.unary_unary(f"/{PROBE}/Remaining", None, None)
        assert 0 < float(remaining(b"")) <= 0.5
        assert float(remaining(b"", timeout=20)) > 19  # a caller's own deadline stands
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(f"/{PROBE}/Work", None, None)(b"")
        took = time.monotonic() - started
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "default of 0.5 s" in str(caught.value.details())
    assert 0.5 <= took < 3  # the work stopped at the deadline, not at the test's end


def test_streams_keep_only_their_callers_deadline(tmp_path):
    with (
        probe_service(tmp_path, MFG_SERVER__DEFAULT_DEADLINE_S="0.2") as service,
        channel_to(service.port) as channel,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == SERVING
        time.sleep(0.5)  # past the default deadline, the subscription is still open
        assert watch.is_active()
        watch.cancel()
