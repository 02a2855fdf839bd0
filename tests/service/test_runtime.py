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
from services.scheduling.servicer import SERVICE_NAME, SchedulingServicer
from tests.harness import TEST_BUILD, channel_to, serve, settings_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_of(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def wait_for_status(channel: grpc.Channel, service: str, wanted: int, timeout_s: float = 5) -> None:
    """Follow the Watch stream until ``wanted`` arrives (bounded by ``timeout_s``)."""
    stub = health_pb2_grpc.HealthStub(channel)
    for update in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s):
        if update.status == wanted:
            return


class _FailingRepository:
    def __enter__(self) -> None:
        raise RuntimeError("disk on fire")

    def __exit__(self, *exc: object) -> None:
        return None


@contextmanager
def scheduling_with(
    tmp_path, ready: threading.Event | None = None, broken_store: bool = False
) -> Iterator[GrpcService]:
    """A scheduling server whose readiness and storage the test controls."""
    settings = settings_for("scheduling", tmp_path)
    servicer = SchedulingServicer(
        schedules=_FailingRepository if broken_store else None,  # type: ignore[arg-type]
        info=lambda: None,  # type: ignore[arg-type,return-value]
    )
    checks = {"flag": ready.is_set} if ready is not None else {}
    parts = ServiceParts(
        service_name=SERVICE_NAME,
        register=lambda server: scheduling_service_pb2_grpc.add_SchedulingServiceServicer_to_server(
            servicer, server
        ),
        readiness_checks=checks,
    )
    service = GrpcService(settings, TEST_BUILD, parts)
    service.start()
    try:
        yield service
    finally:
        service.stop(grace_s=1, delay_s=0)


def test_readiness_follows_dependencies_while_liveness_stays_serving(tmp_path):
    ready = threading.Event()
    with scheduling_with(tmp_path, ready) as service, channel_to(service.port) as channel:
        assert health_of(channel, "") == SERVING
        assert health_of(channel, SERVICE_NAME) == NOT_SERVING
        ready.set()
        wait_for_status(channel, SERVICE_NAME, SERVING)
        assert health_of(channel, SERVICE_NAME) == SERVING
        ready.clear()  # the dependency stops being usable
        wait_for_status(channel, SERVICE_NAME, NOT_SERVING)
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
    with scheduling_with(tmp_path, ready) as service, channel_to(service.port) as channel:
        wait_for_status(channel, SERVICE_NAME, SERVING)
        stopper = threading.Thread(target=service.stop, kwargs={"grace_s": 1, "delay_s": 1.0})
        stopper.start()
        # During the delay the server still answers, with every status NOT_SERVING.
        wait_for_status(channel, "", NOT_SERVING)
        assert health_of(channel, SERVICE_NAME) == NOT_SERVING
        stopper.join(timeout=10)
        assert not stopper.is_alive()


def test_unexpected_error_is_internal_with_request_id_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with (
        scheduling_with(tmp_path, broken_store=True) as service,
        channel_to(service.port) as channel,
    ):
        stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetSchedule(
                pb.GetScheduleRequest(id="abc"), metadata=(("x-request-id", "trace-42"),)
            )
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
    assert access[-1].grpc_method.endswith("/GetSchedule")


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
    def count(requests, context):
        return str(sum(1 for _ in requests)).encode()

    counter = grpc.method_handlers_generic_handler(
        "test.Counter", {"Count": grpc.stream_unary_rpc_method_handler(count)}
    )
    parts = ServiceParts(
        service_name="test.Counter",
        register=lambda server: server.add_generic_rpc_handlers((counter,)),
        readiness_checks={},
    )
    settings = settings_for("quality", tmp_path, MFG_SERVER__MAX_STREAM_MESSAGES="3")
    service = GrpcService(settings, TEST_BUILD, parts)
    service.start()
    try:
        with channel_to(service.port) as channel:
            call = channel.stream_unary("/test.Counter/Count")
            assert call(iter([b"x"] * 3), timeout=10) == b"3"  # at the cap
            with pytest.raises(grpc.RpcError) as caught:
                call(iter([b"x"] * 4), timeout=10)
    finally:
        service.stop(grace_s=1, delay_s=0)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 3 messages" in str(caught.value.details())
