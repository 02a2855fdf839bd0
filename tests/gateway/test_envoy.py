"""The Envoy gateway (gateway/envoy.yaml) in front of three gRPC backends.

Starts a real Envoy (services.devstack.envoy) with fast health checks; see conftest.py
for the backends. Every wait is a bounded poll.
"""

from __future__ import annotations

import copy
import http.client
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from services.devstack.envoy import (
    ENVOY_CONFIG,
    EnvoyError,
    EnvoyProcess,
    envoy_binary,
    render_envoy_config,
    validate,
)
from tests.gateway.conftest import SERVICES

pytestmark = pytest.mark.envoy

GRPCURL = Path(envoy_binary()).with_name("grpcurl")
CALL_TIMEOUT_S = 5.0
# Envoy's cap on a caller's grpc-timeout, and the deadline it applies when none is sent.
ROUTE_MAX_DEADLINE_MS = 30_000


# --- helpers ---------------------------------------------------------------------------


def get_service_info(
    channel: grpc.Channel,
    cluster: str,
    request_id: str,
    timeout: float | None = CALL_TIMEOUT_S,
) -> tuple[Any, grpc.Call]:
    service_name, messages = SERVICES[cluster]
    method = channel.unary_unary(
        f"/{service_name}/GetServiceInfo",
        request_serializer=messages.GetServiceInfoRequest.SerializeToString,
        response_deserializer=messages.GetServiceInfoResponse.FromString,
    )
    response, call = method.with_call(
        messages.GetServiceInfoRequest(),
        timeout=timeout,
        metadata=(("x-request-id", request_id),),
    )
    return response, call


def _identity(data: bytes) -> bytes:
    return data


def raw_call(channel: grpc.Channel, path: str) -> grpc.StatusCode:
    """Call ``path`` with an empty message; return the status code it ends with."""
    try:
        channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)(
            b"", timeout=CALL_TIMEOUT_S
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def access_log_entries(envoy: EnvoyProcess) -> list[dict[str, Any]]:
    entries = []
    for line in envoy.log_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def wait_for_log_entry(
    envoy: EnvoyProcess,
    match: Callable[[dict[str, Any]], bool],
    *,
    after: int = 0,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """The first access log entry past the ``after`` first that ``match`` accepts.

    The test Envoy flushes its access log every 50 ms, hence the (bounded) poll.
    """
    deadline = time.monotonic() + timeout
    while True:
        for entry in access_log_entries(envoy)[after:]:
            if match(entry):
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no matching access log entry within {timeout}s:\n{envoy.log_tail()}"
            )
        time.sleep(0.05)


def by_request_id(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda entry: entry.get("request_id") == request_id


def grpcurl_list(envoy: EnvoyProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), "-plaintext", "-max-time", "10", f"127.0.0.1:{envoy.port}", "list"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def new_request_id() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def channel(envoy: EnvoyProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as gateway_channel:
        yield gateway_channel


# --- configuration ---------------------------------------------------------------------


def test_committed_config_validates() -> None:
    result = validate(ENVOY_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_rendered_config_validates(tmp_path: Path) -> None:
    rendered = render_envoy_config(18080, 19901, {"scheduling": 1, "quality": 2, "maintenance": 3})
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(rendered), encoding="utf-8")
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_rewrites_only_ports() -> None:
    backends = {"scheduling": 41001, "quality": 41002, "maintenance": 41003}
    rendered = render_envoy_config(18080, 19901, backends)
    original = yaml.safe_load(ENVOY_CONFIG.read_text(encoding="utf-8"))

    expected = copy.deepcopy(original)
    expected["admin"]["address"]["socket_address"]["port_value"] = 19901
    listener = expected["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 18080
    for cluster in expected["static_resources"]["clusters"]:
        for locality in cluster.get("load_assignment", {}).get("endpoints", []):
            for lb_endpoint in locality["lb_endpoints"]:
                address = lb_endpoint["endpoint"]["address"]["socket_address"]
                address["port_value"] = backends[cluster["name"]]
    assert rendered == expected
    # Admin stays on localhost whatever the listener host.
    assert rendered["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_render_health_check_overrides() -> None:
    rendered = render_envoy_config(
        0, 0, {name: 1 for name in SERVICES}, health_check_interval=0.2, health_check_timeout=0.5
    )
    for cluster in rendered["static_resources"]["clusters"]:
        for check in cluster.get("health_checks", []):
            assert check["interval"] == "0.200s"
            assert check["no_traffic_interval"] == "0.200s"
            assert check["timeout"] == "0.500s"
            assert "interval_jitter" not in check


def test_render_requires_every_backend() -> None:
    with pytest.raises(EnvoyError, match="missing"):
        render_envoy_config(0, 0, {"scheduling": 1, "quality": 2})
    with pytest.raises(EnvoyError, match="unknown"):
        render_envoy_config(0, 0, {name: 1 for name in [*SERVICES, "billing"]})


# --- a real Envoy ----------------------------------------------------------------------


def test_each_service_reaches_its_backend(
    envoy: EnvoyProcess, channel: grpc.Channel, backends: dict[str, int]
) -> None:
    for cluster, (service_name, _) in SERVICES.items():
        request_id = new_request_id()
        response, call = get_service_info(channel, cluster, request_id)
        assert response.info.service_name == service_name
        # preserve_external_request_id + always_set_request_id_in_response.
        assert ("x-request-id", request_id) in tuple(call.initial_metadata())

        entry = wait_for_log_entry(envoy, by_request_id(request_id))
        assert entry["upstream_cluster"] == cluster
        assert entry["upstream_host"] == f"127.0.0.1:{backends[cluster]}"


def test_access_log_is_json_with_grpc_status(envoy: EnvoyProcess, channel: grpc.Channel) -> None:
    request_id = new_request_id()
    get_service_info(channel, "quality", request_id)
    entry = wait_for_log_entry(envoy, by_request_id(request_id))
    assert entry["path"] == "/manufacturing.quality.v1.QualityService/GetServiceInfo"
    assert entry["grpc_status"] == "OK"
    assert entry["grpc_status_number"] == 0
    assert entry["response_code"] == 200
    assert entry["protocol"] == "HTTP/2"
    assert isinstance(entry["duration_ms"], int)
    assert entry["upstream_host"]

    assert raw_call(channel, "/manufacturing.unknown.v1.Nothing/Here") is (
        grpc.StatusCode.UNIMPLEMENTED
    )
    entry = wait_for_log_entry(
        envoy, lambda e: e["path"] == "/manufacturing.unknown.v1.Nothing/Here"
    )
    assert entry["grpc_status"] == "Unimplemented"
    assert entry["response_flags"] == "NR"  # no route
    assert entry["upstream_host"] is None


def test_caller_deadline_is_honoured_and_capped(envoy: EnvoyProcess, channel: grpc.Channel) -> None:
    """Envoy forwards the effective deadline upstream in grpc-timeout (logged as sent)."""

    def forwarded_ms(timeout: float | None) -> int:
        request_id = new_request_id()
        get_service_info(channel, "maintenance", request_id, timeout=timeout)
        value = wait_for_log_entry(envoy, by_request_id(request_id))["grpc_timeout"]
        assert value.endswith("m"), value  # milliseconds
        return int(value[:-1])

    # A short caller deadline passes through (gRPC Python adds a few ms of slack).
    assert 1_000 <= forwarded_ms(2.0) <= 2_100
    assert forwarded_ms(120.0) == ROUTE_MAX_DEADLINE_MS  # a long one is capped
    assert forwarded_ms(None) == ROUTE_MAX_DEADLINE_MS  # none: the route's maximum


def test_unknown_paths_fail_fast(channel: grpc.Channel) -> None:
    started = time.monotonic()
    # No route at all: Envoy's 404 becomes UNIMPLEMENTED.
    assert raw_call(channel, "/no.such.v1.Service/Method") is grpc.StatusCode.UNIMPLEMENTED
    # gRPC health is deliberately not routed through the gateway (see envoy.yaml).
    assert raw_call(channel, "/grpc.health.v1.Health/Check") is grpc.StatusCode.UNIMPLEMENTED
    # Known service, unknown method: the backend answers UNIMPLEMENTED.
    unknown_method = "/manufacturing.scheduling.v1.SchedulingService/NoSuchMethod"
    assert raw_call(channel, unknown_method) is grpc.StatusCode.UNIMPLEMENTED
    assert time.monotonic() - started < CALL_TIMEOUT_S


def test_gateway_health_endpoint_over_http1(envoy: EnvoyProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=CALL_TIMEOUT_S)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b"ok\n"
    finally:
        connection.close()


def test_grpcurl_list_through_gateway(envoy: EnvoyProcess) -> None:
    result = grpcurl_list(envoy)
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert {service_name for service_name, _ in SERVICES.values()} <= listed


def test_not_serving_backend_leaves_rotation(
    envoy: EnvoyProcess,
    channel: grpc.Channel,
    backends: dict[str, int],
    set_backend_serving: Callable[[str, bool], None],
) -> None:
    get_service_info(channel, "scheduling", new_request_id())  # serving to begin with

    set_backend_serving("scheduling", False)
    try:
        error: grpc.RpcError | None = None
        deadline = time.monotonic() + 5.0
        while error is None and time.monotonic() < deadline:
            try:
                get_service_info(channel, "scheduling", new_request_id())
            except grpc.RpcError as raised_error:
                error = raised_error
            time.sleep(0.05)
        assert error is not None, "scheduling still in rotation after 5s"
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error.details() == "no healthy upstream"  # Envoy's answer, not the backend's
        # Panic routing is off (healthy_panic_threshold 0): no traffic leaks through.
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as raised:
                get_service_info(channel, "scheduling", new_request_id())
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE

        # Other services are unaffected.
        get_service_info(channel, "quality", new_request_id())

        # Reflection fails over to another backend: `list` still shows all services.
        time.sleep(0.2)  # let earlier access log lines flush (every 50 ms) before counting
        before = len(access_log_entries(envoy))
        result = grpcurl_list(envoy)
        assert result.returncode == 0, result.stderr
        assert "manufacturing.scheduling.v1.SchedulingService" in result.stdout.split()
        entry = wait_for_log_entry(
            envoy, lambda e: e["upstream_cluster"] == "reflection", after=before
        )
        assert entry["upstream_host"] != f"127.0.0.1:{backends['scheduling']}"
    finally:
        set_backend_serving("scheduling", True)

    # Back in rotation after one good check (+ Envoy's 1 s update_merge_window).
    deadline = time.monotonic() + 5.0
    while True:
        try:
            get_service_info(channel, "scheduling", new_request_id())
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_several_envoys_run_at_once(envoy: EnvoyProcess, backends: dict[str, int]) -> None:
    with EnvoyProcess(backends, listen_host="127.0.0.1", concurrency=1) as second:
        assert second.port != envoy.port
        assert second.admin_port != envoy.admin_port
        with grpc.insecure_channel(f"127.0.0.1:{second.port}") as second_channel:
            response, _ = get_service_info(second_channel, "scheduling", new_request_id())
        assert response.info.service_name == SERVICES["scheduling"][0]
        pid = second.pid
    assert pid is not None
    assert second.pid is None  # stopped and forgotten


def test_start_failure_reports_envoy_log(backends: dict[str, int]) -> None:
    process = EnvoyProcess(backends, listen_host="127.0.0.1")
    listener = process.config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["address"] = "not-an-address"
    with pytest.raises(EnvoyError, match="exited") as raised, process:
        pass
    assert "not-an-address" in str(raised.value)  # the log tail names the problem
    assert process.pid is None
