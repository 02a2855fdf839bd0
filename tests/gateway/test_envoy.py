"""The Envoy gateway (gateway/envoy.yaml) in front of three gRPC backends.

Starts a real Envoy (services.devstack.envoy) with fast health checks; see conftest.py
for the backends. Every wait is a bounded poll.
"""

from __future__ import annotations

import copy
import http.client
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.devstack.envoy import (
    ENVOY_CONFIG,
    EnvoyError,
    EnvoyProcess,
    envoy_binary,
    layout_of,
    render_envoy_config,
    validate,
)
from services.rollout import contract, xds
from tests.gateway.conftest import SERVICES, start_stand_in

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


def raw_call(
    channel: grpc.Channel, path: str, timeout: float | None = CALL_TIMEOUT_S
) -> grpc.StatusCode:
    """Call ``path`` with an empty message; return the status code it ends with."""
    try:
        channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)(
            b"", timeout=timeout
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
    """gateway/envoy.yaml with the committed gateway/xds/ files, as Envoy reads them."""
    result = validate(ENVOY_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_rendered_config_validates(tmp_path: Path) -> None:
    xds_dir = tmp_path / "xds"
    xds_dir.mkdir()
    xds.write_clusters(xds_dir, xds.default_layout(), "1")
    xds.write_routes(xds_dir, xds.default_layout(), "1")
    rendered = render_envoy_config(18080, 19901, xds_dir)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(rendered), encoding="utf-8")
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_rewrites_only_ports_and_xds_paths(tmp_path: Path) -> None:
    rendered = render_envoy_config(18080, 19901, tmp_path)
    original = yaml.safe_load(ENVOY_CONFIG.read_text(encoding="utf-8"))

    expected = copy.deepcopy(original)
    expected["admin"]["address"]["socket_address"]["port_value"] = 19901
    listener = expected["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 18080
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for source, name in (
        (manager["rds"]["config_source"]["path_config_source"], "rds.yaml"),
        (expected["dynamic_resources"]["cds_config"]["path_config_source"], "cds.yaml"),
    ):
        source["path"] = str(tmp_path / name)
        source["watched_directory"] = {"path": str(tmp_path)}
    assert rendered == expected
    # Admin stays on localhost whatever the listener host.
    assert rendered["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_committed_xds_files_are_generated_from_the_contract(tmp_path: Path) -> None:
    xds.write_clusters(tmp_path, xds.default_layout(), "1")
    xds.write_routes(tmp_path, xds.default_layout(), "1")
    for name in (xds.CDS_FILE, xds.RDS_FILE):
        committed = (ENVOY_CONFIG.parent / "xds" / name).read_text(encoding="utf-8")
        assert committed == (tmp_path / name).read_text(encoding="utf-8"), (
            f"gateway/xds/{name} is stale: run python -m services.rollout.xds"
        )


def _route_for(routes: dict[str, Any], path: str, headers: dict[str, str] | None = None):
    """The first route Envoy would pick for a gRPC call to ``path`` (or, with other
    ``headers``, another kind of request)."""
    sent = {":method": "POST", "content-type": "application/grpc", **(headers or {})}

    def matches(rule: dict[str, str], value: str | None) -> bool:
        if value is None:
            return False
        return value == rule["exact"] if "exact" in rule else value.startswith(rule["prefix"])

    for route in routes["virtual_hosts"][0]["routes"]:
        match = route["match"]
        if "path" in match and match["path"] != path:
            continue
        if "prefix" in match and not path.startswith(match["prefix"]):
            continue
        if all(matches(h["string_match"], sent.get(h["name"])) for h in match.get("headers", [])):
            return route
    return None


def test_server_streams_are_routed_for_grpc_web_and_preflights_but_not_json() -> None:
    routes = xds.render_routes(xds.default_layout())
    path = "/manufacturing.scheduling.v1.SchedulingService/SolveStream"
    grpc_route = _route_for(routes, path)
    assert grpc_route is not None
    assert _route_for(routes, path, {"content-type": "application/grpc-web+proto"}) == grpc_route
    assert _route_for(routes, path, {"content-type": "application/json"}) is None
    preflight = _route_for(routes, path, {":method": "OPTIONS", "content-type": ""})
    assert preflight is not None and preflight["route"] == grpc_route["route"]
    # A stream of requests cannot come from a browser: no preflight route.
    ingest = "/manufacturing.maintenance.v1.MaintenanceService/IngestReadings"
    assert _route_for(routes, ingest, {":method": "OPTIONS", "content-type": ""}) is None


def test_only_side_effect_free_methods_are_retried_on_unavailable() -> None:
    routes = xds.render_routes(xds.default_layout())
    seen_idempotent = seen_other = 0
    for service in contract.SERVICES:
        for method in contract.methods(service):
            route = _route_for(routes, method.path)
            assert route is not None, method.path
            retry_on = set(route["route"]["retry_policy"]["retry_on"].split(","))
            # A call that never reached a server may always be sent again.
            assert {"connect-failure", "refused-stream"} <= retry_on
            if method.idempotent:
                seen_idempotent += 1
                assert {"unavailable", "reset"} <= retry_on, method.path
            else:
                seen_other += 1
                assert not retry_on & {"unavailable", "reset"}, method.path
            clusters = route["route"]["weighted_clusters"]["clusters"]
            assert [c["name"] for c in clusters] == [f"{service}-blue", f"{service}-green"]
    assert seen_idempotent and seen_other  # the contract has both kinds
    solve = _route_for(routes, "/manufacturing.scheduling.v1.SchedulingService/Solve")
    assert "unavailable" not in solve["route"]["retry_policy"]["retry_on"]


def test_deadlines_per_route() -> None:
    routes = xds.render_routes(xds.default_layout())
    chart = _route_for(routes, "/manufacturing.quality.v1.QualityService/ComputeControlChart")
    assert chart["route"]["max_stream_duration"] == {
        "max_stream_duration": "30.000s",
        "grpc_timeout_header_max": "30.000s",
    }
    ingest = _route_for(routes, "/manufacturing.maintenance.v1.MaintenanceService/IngestReadings")
    assert ingest["route"]["max_stream_duration"]["grpc_timeout_header_max"] == "0.000s"
    # Health is routed only with the header naming the service.
    assert _route_for(routes, "/grpc.health.v1.Health/Watch") is None
    watch = _route_for(
        routes, "/grpc.health.v1.Health/Watch", {xds.HEALTH_ROUTE_HEADER: "maintenance"}
    )
    assert watch["route"]["weighted_clusters"]["clusters"][0]["name"] == "maintenance-blue"


def test_layout_rejects_bad_weights_and_backends() -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        xds.ServiceLayout({"blue": (1,), "green": (2,)}, {"blue": 50, "green": 40})
    with pytest.raises(EnvoyError, match="missing"):
        layout_of({"scheduling": 1, "quality": 2})
    with pytest.raises(EnvoyError, match="unknown"):
        layout_of({name: 1 for name in [*SERVICES, "billing"]})


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
        assert entry["upstream_cluster"] == f"{cluster}-blue"
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
    # gRPC health is routed only with the header naming a service (see xds.py).
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


# --- blue and green --------------------------------------------------------------------


def _info(channel: grpc.Channel, cluster: str, **metadata: str) -> Any:
    response, _ = get_service_info(channel, cluster, new_request_id())
    return response.info


def test_weights_move_without_restart_and_without_a_failed_call(
    backends: dict[str, int],
) -> None:
    """Flip quality between a blue and a green stand-in under continuous calls."""
    green = start_stand_in("quality", color="green")
    try:
        layout = layout_of(backends)
        blue_port = layout["quality"].ports["blue"][0]
        ports = {"blue": (blue_port,), "green": (green.port,)}
        with (
            EnvoyProcess(
                layout,
                listen_host="127.0.0.1",
                health_check_interval=0.2,
                concurrency=1,
                file_flush_interval_ms=50,
            ) as envoy,
            grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as channel,
        ):
            pid = envoy.pid

            def shift(blue: int) -> None:
                quality = xds.ServiceLayout(ports, {"blue": blue, "green": 100 - blue})
                envoy.set_layout({**envoy.layout, "quality": quality})

            def green_healthy() -> bool:
                status = json.loads(envoy.admin_get("/clusters?format=json")[1])
                (cluster,) = [c for c in status["cluster_statuses"] if c["name"] == "quality-green"]
                hosts = cluster.get("host_statuses", [])
                return bool(hosts) and all(
                    h["health_status"].get("eds_health_status") == "HEALTHY"
                    and len(h["health_status"]) == 1
                    for h in hosts
                )

            shift(100)
            deadline = time.monotonic() + 5
            while not green_healthy():
                assert time.monotonic() < deadline, "green never became healthy"
                time.sleep(0.05)

            colors: list[str] = []
            for blue_weight in (0, 100, 50, 0):
                shift(blue_weight)
                time.sleep(0.3)  # Envoy reloads the renamed file (inotify)
                colors = [_info(channel, "quality").color for _ in range(20)]
                if blue_weight == 100:
                    assert set(colors) == {""}, colors
                elif blue_weight == 0:
                    assert set(colors) == {"green"}, colors
                else:
                    assert set(colors) == {"", "green"}, colors
            assert envoy.pid == pid  # one process throughout
            _, body = envoy.admin_get("/stats?filter=rds.grpc_routes.update_rejected")
            assert body.strip().endswith(": 0"), body
    finally:
        green.server.stop(grace=None)


def test_retries_follow_the_contract_and_ready_follows_draining(
    backends: dict[str, int],
) -> None:
    """Scheduling and maintenance blue each get a second host answering UNAVAILABLE."""
    flaky = {name: start_stand_in(name, unavailable=True) for name in ("scheduling", "maintenance")}
    try:
        layout = layout_of(backends)
        for name, stand_in in flaky.items():
            good = layout[name].ports["blue"][0]
            layout[name] = xds.ServiceLayout({"blue": (good, stand_in.port), "green": ()})
        with (
            EnvoyProcess(
                layout, listen_host="127.0.0.1", health_check_interval=0.2, concurrency=1
            ) as envoy,
            grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as channel,
        ):

            def stat(name: str) -> int:
                _, body = envoy.admin_get(f"/stats?filter={name}$")
                return int(body.split(":")[1])

            # GetServiceInfo is NO_SIDE_EFFECTS: retried on the other host, never fails.
            for _ in range(20):
                assert _info(channel, "scheduling").service_name == SERVICES["scheduling"][0]
            assert stat("cluster.scheduling-blue.upstream_rq_retry") >= 2
            # IngestReadings is not: the flaky host's UNAVAILABLE reaches the caller (the
            # good stand-in does not implement it and says so).
            ingest = "/manufacturing.maintenance.v1.MaintenanceService/IngestReadings"
            codes = [raw_call(channel, ingest) for _ in range(20)]
            assert grpc.StatusCode.UNAVAILABLE in codes, codes
            assert set(codes) == {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED}
            assert stat("cluster.maintenance-blue.upstream_rq_retry") == 0
            # Outlier detection took each flaky host out after consecutive failures.
            for name in flaky:
                assert stat(f"cluster.{name}-blue.outlier_detection.ejections_enforced_total") >= 1

            # The gateway's own readiness on the listener, and the drain switch.
            def ready() -> int:
                connection = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=5)
                try:
                    connection.request("GET", "/ready")
                    return connection.getresponse().status
                finally:
                    connection.close()

            assert ready() == 200
            connection = http.client.HTTPConnection("127.0.0.1", envoy.admin_port, timeout=5)
            connection.request("POST", "/healthcheck/fail")
            assert connection.getresponse().status == 200
            connection.close()
            assert ready() == 503
    finally:
        for stand_in in flaky.values():
            stand_in.server.stop(grace=None)


def test_health_watch_through_the_gateway_with_the_service_header(
    channel: grpc.Channel,
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=SERVICES["maintenance"][0])
    metadata = ((xds.HEALTH_ROUTE_HEADER, "maintenance"),)
    assert stub.Check(request, timeout=5, metadata=metadata).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    stream = stub.Watch(request, timeout=5, metadata=metadata)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()


def test_rest_json_for_unary_methods(envoy: EnvoyProcess) -> None:
    """curl-style POST of a JSON body to a unary method's path, answered in JSON."""

    def post(path: str, body: str) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=CALL_TIMEOUT_S)
        try:
            connection.request("POST", path, body, {"content-type": "application/json"})
            response = connection.getresponse()
            return (
                response.status,
                response.getheader("content-type") or "",
                response.read().decode("utf-8"),
            )
        finally:
            connection.close()

    status, content_type, body = post(
        "/manufacturing.maintenance.v1.MaintenanceService/GetServiceInfo", "{}"
    )
    assert (status, content_type) == (200, "application/json"), body
    assert json.loads(body)["info"]["serviceName"] == SERVICES["maintenance"][0]
    # A gRPC error comes back as its HTTP status with a google.rpc.Status body (the
    # stand-in implements only GetServiceInfo).
    status, _, body = post(
        "/manufacturing.quality.v1.QualityService/ComputeControlChart",
        '{"chartType": "CHART_TYPE_XBAR_R"}',
    )
    assert status == 501 and json.loads(body)["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]
    # Malformed JSON is the caller's error, never a backend call.
    status, _, _ = post("/manufacturing.quality.v1.QualityService/GetServiceInfo", "{nope")
    assert status == 400
    # Streaming methods are gRPC only.
    status, _, _ = post(
        "/manufacturing.maintenance.v1.MaintenanceService/IngestReadings", '{"readings": []}'
    )
    assert status == 404


# --- a default deadline ----------------------------------------------------------------


class _SlowSolve(grpc.GenericRpcHandler):
    """Scheduling's Solve that never finishes on its own; records the deadline it got."""

    def __init__(self) -> None:
        self.remaining_s: list[float | None] = []
        self.cancelled = threading.Event()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method != SOLVE:
            return None

        def solve(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.remaining_s.append(context.time_remaining())
            context.add_callback(self.cancelled.set)
            while context.is_active():
                time.sleep(0.05)
            return b""

        return grpc.unary_unary_rpc_method_handler(solve)


SOLVE = "/manufacturing.scheduling.v1.SchedulingService/Solve"


def wait_until_healthy(envoy: EnvoyProcess, cluster: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads(envoy.admin_get("/clusters?format=json")[1])
        (found,) = [c for c in status["cluster_statuses"] if c["name"] == cluster]
        hosts = found.get("host_statuses", [])
        if hosts and all(h["health_status"].get("eds_health_status") == "HEALTHY" for h in hosts):
            return
        assert time.monotonic() < deadline, f"{cluster} never became healthy"
        time.sleep(0.05)


def test_a_call_without_a_deadline_gets_the_routes_default(backends: dict[str, int]) -> None:
    """No grpc-timeout from the caller: Envoy applies the route's (here 1 s), tells the
    service in grpc-timeout, and ends the call DEADLINE_EXCEEDED instead of waiting."""
    slow = _SlowSolve()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((slow,))
    health_servicer = health.HealthServicer()
    health_servicer.set(SERVICES["scheduling"][0], health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with (
            EnvoyProcess(
                {**backends, "scheduling": port},
                listen_host="127.0.0.1",
                concurrency=1,
                max_call_s=1.0,
                health_check_interval=0.2,
            ) as envoy,
            grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as channel,
        ):
            wait_until_healthy(envoy, "scheduling-blue")
            started = time.monotonic()
            assert raw_call(channel, SOLVE, timeout=None) is grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 3.0
        (remaining,) = slow.remaining_s
        assert remaining is not None and 0 < remaining <= 1.0  # the service knew its deadline
        assert slow.cancelled.wait(2.0)  # and its handler was stopped, nothing piles up
    finally:
        server.stop(grace=None)
