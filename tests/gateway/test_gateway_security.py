"""The hardened gateway: TLS for callers, JWT at Envoy, per-client rate limits, mTLS upstream.

A real Envoy (services/devstack/gateway_security.py on gateway/envoy.yaml) in front of a
real scheduling service that itself runs with TLS demanding client certificates and
with authentication on, so every call below crosses both checks. Certificates come from
the dev-cert command, tokens from a test issuer whose JWK set Envoy and the service load.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb
from manufacturing.scheduling.v1 import scheduling_service_pb2_grpc

from services.devstack import gateway_security as gs
from services.devstack.envoy import EnvoyProcess, layout_of, validate
from services.rollout import checks, processes, xds
from services.rollout import cli as rollout_cli
from services.runtime import devcerts
from tests.delivery.tools import tool
from tests.gateway import grpc_web
from tests.gateway.conftest import HEALTH_CHECK_INTERVAL_S
from tests.gateway.local_suite import ROOT, local_suite, paste
from tests.gateway.test_envoy import by_request_id, wait_for_log_entry
from tests.harness import serve, settings_for

pytestmark = pytest.mark.envoy

ISSUER = "https://login.plant.example"
AUDIENCE = "manufacturing-ai"
CALL_TIMEOUT_S = 5.0
RATE = gs.RateLimit(requests_per_s=1, burst=5)
SCHEDULING = "manufacturing.scheduling.v1.SchedulingService"


class Issuer:
    """Signs tokens as the plant's identity provider would (ES256, key id k1)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> str:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]})

    def token(self, subject: str, *roles: str) -> str:
        now = int(time.time())
        claims = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        return jwt.encode(
            {**claims, "roles": list(roles)}, self.key, algorithm="ES256", headers={"kid": "k1"}
        )


def new_subject() -> str:
    """Each test its own caller: the rate limit counts per subject."""
    return f"user-{uuid.uuid4().hex[:8]}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), ("x-request-id", f"test-{uuid.uuid4()}"))


def code_of(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    devcerts.create(out)
    return out


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Path:
    path = tmp_path_factory.mktemp("auth") / "jwks.json"
    path.write_text(issuer.jwks(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def security(certs: Path, jwks_file: Path) -> gs.GatewaySecurity:
    return gs.GatewaySecurity(
        tls=gs.ListenerTls(str(certs / "server.pem"), str(certs / "server-key.pem")),
        jwt=gs.Jwt(ISSUER, (AUDIENCE,), jwks_file=str(jwks_file)),
        rate_limit=RATE,
    )


@pytest.fixture(scope="module")
def scheduling_port(
    tmp_path_factory: pytest.TempPathFactory, certs: Path, jwks_file: Path
) -> Iterator[int]:
    """The real scheduling service: TLS demanding client certificates, auth on."""
    settings = settings_for(
        "scheduling",
        tmp_path_factory.mktemp("scheduling"),
        TLS_ENABLED="true",
        TLS_CERT_FILE=str(certs / "server.pem"),
        TLS_KEY_FILE=str(certs / "server-key.pem"),
        TLS_CLIENT_CA_FILE=str(certs / "ca.pem"),
        AUTH_ENABLED="true",
        AUTH_JWKS_FILE=str(jwks_file),
        AUTH_ISSUER=ISSUER,
    )
    with serve(settings) as service:
        yield service.port


@pytest.fixture(scope="module")
def envoy(
    backends: dict[str, int], scheduling_port: int, certs: Path, security: gs.GatewaySecurity
) -> Iterator[EnvoyProcess]:
    # Only scheduling is called here; the other clusters' plaintext stand-ins stay
    # unhealthy behind mutual TLS, which is the point of the switch.
    with EnvoyProcess(
        {**backends, "scheduling": scheduling_port},
        listen_host="127.0.0.1",
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        concurrency=1,
        file_flush_interval_ms=50,
        security=security,
        upstream_tls=xds.UpstreamTls(
            str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
        ),
    ) as process:
        yield process


@pytest.fixture(scope="module")
def channel(envoy: EnvoyProcess, certs: Path) -> Iterator[grpc.Channel]:
    """A TLS client trusting only the dev CA."""
    credentials = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{envoy.port}", credentials) as tls_channel:
        grpc.channel_ready_future(tls_channel).result(timeout=10)
        yield tls_channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> scheduling_service_pb2_grpc.SchedulingServiceStub:
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(channel)
    # Envoy's health checks must see the service (over mTLS) before calls reach it.
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=SCHEDULING)
    deadline = time.monotonic() + 10
    while True:
        try:
            health.Check(request, timeout=1, metadata=((xds.HEALTH_ROUTE_HEADER, "scheduling"),))
            return stub
        except grpc.RpcError:
            assert time.monotonic() < deadline, "scheduling never healthy behind mutual TLS"
            time.sleep(0.1)


def list_schedules(
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub, metadata: Any = ()
) -> Any:
    return stub.ListSchedules(pb.ListSchedulesRequest(), timeout=CALL_TIMEOUT_S, metadata=metadata)


def test_secured_bootstrap_validates(tmp_path: Path, envoy: EnvoyProcess) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(envoy.config), encoding="utf-8")
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_call_without_a_token_is_refused_by_envoy(
    envoy: EnvoyProcess, stub: scheduling_service_pb2_grpc.SchedulingServiceStub
) -> None:
    request_id = f"test-{uuid.uuid4()}"
    with pytest.raises(grpc.RpcError) as raised:
        list_schedules(stub, (("x-request-id", request_id),))
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    entry = wait_for_log_entry(envoy, by_request_id(request_id))
    assert entry["upstream_host"] is None  # never reached the service
    assert "jwt" in entry["response_code_details"].lower()


def test_foreign_and_malformed_tokens_are_refused_by_envoy(
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub,
) -> None:
    stranger = Issuer().token(new_subject(), "admin")  # right claims, unknown key
    for token in (stranger, "not-a-jwt"):
        code = code_of(lambda token=token: list_schedules(stub, bearer(token)))
        assert code is grpc.StatusCode.UNAUTHENTICATED


def test_valid_token_passes_and_the_service_checks_roles_again(
    envoy: EnvoyProcess,
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub,
    issuer: Issuer,
) -> None:
    viewer = bearer(issuer.token(new_subject(), "viewer"))
    _, call = stub.ListSchedules.with_call(
        pb.ListSchedulesRequest(), timeout=CALL_TIMEOUT_S, metadata=viewer
    )
    assert call.code() is grpc.StatusCode.OK
    entry = wait_for_log_entry(envoy, by_request_id(viewer[1][1]))
    assert entry["upstream_cluster"] == "scheduling-blue" and entry["grpc_status"] == "OK"
    # The token reached the service, which applies the per-method roles: a viewer may
    # not solve (Envoy only checks the token is genuine).
    code = code_of(lambda: stub.Solve(pb.SolveRequest(), timeout=CALL_TIMEOUT_S, metadata=viewer))
    assert code is grpc.StatusCode.PERMISSION_DENIED


def test_api_key_calls_pass_envoy_and_the_service_checks_the_key(
    envoy: EnvoyProcess, stub: scheduling_service_pb2_grpc.SchedulingServiceStub
) -> None:
    request_id = f"test-{uuid.uuid4()}"
    metadata = (("x-api-key", "mk_unknown"), ("x-request-id", request_id))
    assert code_of(lambda: list_schedules(stub, metadata)) is grpc.StatusCode.UNAUTHENTICATED
    # Answered by the service, not Envoy: the key is checked where the digests are.
    assert wait_for_log_entry(envoy, by_request_id(request_id))["upstream_host"]


def test_health_stays_open_without_a_token(envoy: EnvoyProcess, certs: Path) -> None:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    for path in ("/health", "/ready"):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", envoy.port, timeout=CALL_TIMEOUT_S, context=context
        )
        try:
            connection.request("GET", path)
            assert connection.getresponse().status == 200, path
        finally:
            connection.close()


def test_browsers_are_answered_in_cors_and_grpc_web_ahead_of_the_token_check(
    envoy: EnvoyProcess,
    certs: Path,
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub,
    issuer: Issuer,
) -> None:
    """A preflight carries no token, so CORS answers it before the JWT check; a gRPC-Web
    call without one is refused in gRPC-Web, readable by the page; with one it passes."""
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def connect() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", envoy.port, timeout=CALL_TIMEOUT_S, context=context
        )

    path, origin = f"/{SCHEDULING}/ListSchedules", "http://localhost:3000"
    preflight = grpc_web.preflight(connect(), path, origin)
    assert preflight.status == 200, preflight
    assert preflight.headers["access-control-allow-origin"] == origin
    refused = grpc_web.call(connect(), path, b"", origin)
    assert refused.headers["content-type"].startswith("application/grpc-web"), refused
    assert refused.grpc_status() == str(grpc.StatusCode.UNAUTHENTICATED.value[0])
    assert refused.headers["access-control-allow-origin"] == origin
    token = issuer.token(new_subject(), "viewer")
    passed = grpc_web.call(connect(), path, b"", origin, {"Authorization": f"Bearer {token}"})
    assert passed.grpc_status() == "0", passed


def test_plaintext_and_untrusting_clients_do_not_connect(envoy: EnvoyProcess) -> None:
    target = f"127.0.0.1:{envoy.port}"
    with grpc.insecure_channel(target) as plaintext, pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(plaintext).result(timeout=2)
    # The system trust store does not know the dev CA.
    untrusting_credentials = grpc.ssl_channel_credentials()
    with (
        grpc.secure_channel(target, untrusting_credentials) as untrusting,
        pytest.raises(grpc.FutureTimeoutError),
    ):
        grpc.channel_ready_future(untrusting).result(timeout=2)


def test_rate_limit_per_subject_answers_resource_exhausted(
    envoy: EnvoyProcess,
    stub: scheduling_service_pb2_grpc.SchedulingServiceStub,
    issuer: Issuer,
) -> None:
    greedy = bearer(issuer.token(new_subject(), "viewer"))
    codes = [code_of(lambda: list_schedules(stub, greedy)) for _ in range(RATE.burst * 3)]
    assert codes[: RATE.burst] == [grpc.StatusCode.OK] * RATE.burst  # the burst is served
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[RATE.burst :]
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Another caller has a bucket of its own.
    other = bearer(issuer.token(new_subject(), "viewer"))
    assert [code_of(lambda: list_schedules(stub, other)) for _ in range(3)] == (
        [grpc.StatusCode.OK] * 3
    )
    _, body = envoy.admin_get("/stats?filter=per_client.http_local_rate_limit.rate_limited$")
    assert int(body.split(":")[1]) >= 1


def test_rate_limit_without_jwt_counts_per_address() -> None:
    limit = gs.rate_limit_filter(RATE, with_jwt=False)["typed_config"]
    assert limit["rate_limits"] == [{"actions": [{"remote_address": {}}]}]
    assert [d["entries"] for d in limit["descriptors"]] == [[{"key": "remote_address"}]]


def test_jwks_from_a_uri_gets_a_verified_cluster_of_its_own(tmp_path: Path) -> None:
    process = EnvoyProcess(
        layout_of({"scheduling": 1, "quality": 2, "maintenance": 3}),
        security=gs.GatewaySecurity(
            jwt=gs.Jwt(ISSUER, (AUDIENCE,), jwks_uri="https://login.plant.example/jwks.json")
        ),
    )
    (cluster,) = process.config["static_resources"]["clusters"]
    assert cluster["name"] == gs.JWKS_CLUSTER
    socket = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert socket["address"]["socket_address"] == {
        "address": "login.plant.example",
        "port_value": 443,
    }
    assert cluster["transport_socket"]["typed_config"]["sni"] == "login.plant.example"
    with pytest.raises(gs.GatewaySecurityError):
        gs.Jwt(ISSUER, (AUDIENCE,), jwks_file="a", jwks_uri="https://b")


def test_local_suite_with_the_security_switches_answers_its_printed_calls(
    tmp_path: Path, certs: Path, jwks_file: Path, issuer: Issuer
) -> None:
    """`python -m services.devstack --gateway-tls --jwks`: the printed calls work with a
    token, and the same calls without one are refused."""
    options = ("--gateway-tls", str(certs), "--jwks", str(jwks_file), "--issuer", ISSUER)
    with local_suite(tmp_path / "var", *options) as suite:
        # The calls that need a token: one per service over gRPC, and the REST one.
        calls = [line.strip() for line in suite.output if "$MFG_TOKEN" in line]
        assert len(calls) == 4 and all(f"localhost:{suite.gateway}" in c for c in calls)
        token = issuer.token(new_subject(), "operator")
        for command in calls:
            assert paste(command, MFG_TOKEN=token).returncode == 0, command
            assert paste(command, MFG_TOKEN="").returncode != 0, command


def test_local_suite_with_mutual_tls_to_the_services_and_rollout_checks(
    tmp_path: Path, certs: Path
) -> None:
    """`python -m services.devstack --service-tls`: Envoy reaches the services over mutual
    TLS (the printed calls work), a caller without the client certificate is refused,
    and a rollout's checks pass with the printed ROLLOUT_TLS_* files."""
    with local_suite(tmp_path / "var", "--service-tls", str(certs)) as suite:
        calls = [line.strip() for line in suite.output if " -d " in line and "grpcurl" in line]
        assert len(calls) == 3
        for command in calls:
            assert paste(command).returncode == 0, command
        scheduling = suite.backends[0]
        with (
            grpc.insecure_channel(f"127.0.0.1:{scheduling}") as plaintext,
            pytest.raises(grpc.RpcError) as caught,
        ):
            health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        (rollout,) = [line.strip() for line in suite.output if "ROLLOUT_TLS_CA_FILE=" in line]
        environ = dict(
            word.split("=", 1) for word in shlex.split(rollout) if word.startswith("ROLLOUT_TLS_")
        )
        tls = rollout_cli.client_tls(environ)
        assert tls is not None
        version = processes.version_of(processes.REPOSITORY, "scheduling")
        assert checks.smoke(scheduling, "scheduling", version, "blue", tls=tls) >= 1
        with pytest.raises(checks.CheckFailed, match="UNAVAILABLE"):
            checks.smoke(scheduling, "scheduling", version, "blue")


# --- Kubernetes: k8s/components/gateway-security ---------------------------------------


def test_kubernetes_bootstrap_is_current_and_validates(tmp_path: Path, certs: Path) -> None:
    committed = gs.KUBERNETES_BOOTSTRAP.read_text(encoding="utf-8")
    assert committed == gs.render_bootstrap(gs.KUBERNETES), (
        "k8s/components/gateway-security/envoy.yaml is stale: "
        "run python -m services.devstack.gateway_security"
    )
    # The mounted secrets' paths, pointed at local files for Envoy's own check.
    (tmp_path / "jwks").write_text(Issuer().jwks(), encoding="utf-8")
    local = (
        committed.replace("/etc/envoy/tls/tls.crt", str(certs / "server.pem"))
        .replace("/etc/envoy/tls/tls.key", str(certs / "server-key.pem"))
        .replace("/etc/envoy/auth/jwks", str(tmp_path / "jwks"))
    )
    (tmp_path / "envoy.yaml").write_text(local, encoding="utf-8")
    result = validate(tmp_path / "envoy.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_component_mounts_what_the_bootstrap_reads(tmp_path: Path) -> None:
    kubectl = tool("kubectl", "renders the kustomize component")
    render = subprocess.run(
        [sys.executable, "docker/render.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert render.returncode == 0, render.stderr
    k8s = os.path.relpath(ROOT / "k8s", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{k8s}/base"],
                "components": [f"{k8s}/components/gateway-security"],
            }
        ),
        encoding="utf-8",
    )
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    documents = list(yaml.safe_load_all(built.stdout))

    def find(kind: str, prefix: str) -> dict[str, Any]:
        (found,) = [
            d for d in documents if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)
        ]
        return found

    bootstrap = find("ConfigMap", "gateway-bootstrap")["data"]["envoy.yaml"]
    assert bootstrap == gs.KUBERNETES_BOOTSTRAP.read_text(encoding="utf-8")
    pod = find("Deployment", "gateway")["spec"]["template"]["spec"]
    (envoy,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "gateway-tls"
    assert volumes["auth"]["secret"]["items"] == [{"key": "jwks", "path": "jwks"}]
    # Every file the bootstrap names is one the pod mounts.
    assert gs.KUBERNETES.tls is not None and gs.KUBERNETES.jwt is not None
    for path, volume in (
        (gs.KUBERNETES.tls.cert_file, "tls"),
        (gs.KUBERNETES.tls.key_file, "tls"),
        (gs.KUBERNETES.jwt.jwks_file, "auth"),
    ):
        assert path in bootstrap and Path(path).parent == Path(mounts[volume])
    assert envoy["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert envoy["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    annotations = find("Ingress", "gateway")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"
