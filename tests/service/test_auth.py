"""Authentication and per-method roles on a real server: JWTs, API keys, denials logged."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.maintenance.v1 import maintenance_service_pb2
from manufacturing.scheduling.v1 import schedule_pb2, scheduling_service_pb2_grpc
from manufacturing.scheduling.v1 import scheduling_service_pb2 as pb

from services.runtime.access import Role, rule_for
from services.runtime.auth import digest
from tests.harness import channel_to, serve, settings_for

ISSUER = "https://login.plant.example"
AUDIENCE = "manufacturing-ai"
MACHINE_KEY = "mk_7f3a9c2e51b84d06a1f2c3d4e5f60718"


def one_job() -> schedule_pb2.Problem:
    return schedule_pb2.Problem(
        machines=[schedule_pb2.Machine(id="a")],
        jobs=[
            schedule_pb2.Job(
                id="j1",
                operations=[
                    schedule_pb2.Operation(
                        eligible_machines=[schedule_pb2.EligibleMachine(machine_id="a", duration=2)]
                    )
                ],
            )
        ],
    )


class Issuer:
    """Signs tokens like the plant's identity provider would."""

    def __init__(self, key_id: str = "k1") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = key_id

    def jwks(self) -> str:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return json.dumps({"keys": [{**public, "kid": self.key_id, "alg": "ES256", "use": "sig"}]})

    def token(self, *roles: str, expires_in: int = 300, audience: str = AUDIENCE) -> str:
        now = int(time.time())
        claims = {
            "sub": "alice",
            "iss": ISSUER,
            "aud": audience,
            "iat": now,
            "exp": now + expires_in,
        }
        return jwt.encode(
            {**claims, "roles": list(roles)},
            self.key,
            algorithm="ES256",
            headers={"kid": self.key_id},
        )


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def secured_channel(tmp_path, issuer) -> Iterator[grpc.Channel]:
    (tmp_path / "jwks.json").write_text(issuer.jwks())
    (tmp_path / "api-keys").write_text(f"# machine keys\npress-7 {digest(MACHINE_KEY)}\n")
    settings = settings_for(
        "scheduling",
        tmp_path,
        AUTH_ENABLED="true",
        AUTH_JWKS_FILE=str(tmp_path / "jwks.json"),
        AUTH_ISSUER=ISSUER,
        AUTH_API_KEYS_FILE=str(tmp_path / "api-keys"),
    )
    with serve(settings) as service, channel_to(service.port) as channel:
        yield channel


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_roles_decide_who_may_call_what(secured_channel, issuer):
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(secured_channel)
    solve = pb.SolveRequest(problem=one_job())
    viewer, operator = bearer(issuer.token("viewer")), bearer(issuer.token("viewer", "operator"))
    assert (
        code_of(lambda: stub.ListSchedules(pb.ListSchedulesRequest(), metadata=viewer))
        == grpc.StatusCode.OK
    )
    assert code_of(lambda: stub.Solve(solve, metadata=viewer)) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: stub.Solve(solve, metadata=operator)) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer not-a-jwt"),),
        (("x-api-key", "mk_unknown"),),
    ],
)
def test_missing_or_malformed_credentials_are_unauthenticated(secured_channel, metadata):
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(secured_channel)
    call = lambda: stub.ListSchedules(pb.ListSchedulesRequest(), metadata=metadata)  # noqa: E731
    assert code_of(call) == grpc.StatusCode.UNAUTHENTICATED


def test_expired_foreign_and_misaddressed_tokens_are_refused(secured_channel, issuer):
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(secured_channel)
    stranger = Issuer()  # same key id, different key
    for token in (
        issuer.token("admin", expires_in=-120),
        issuer.token("admin", audience="another-api"),
        stranger.token("admin"),
    ):
        call = lambda t=token: stub.ListSchedules(pb.ListSchedulesRequest(), metadata=bearer(t))  # noqa: E731
        assert code_of(call) == grpc.StatusCode.UNAUTHENTICATED


def test_machine_api_key_cannot_read_schedules(secured_channel):
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(secured_channel)

    def call():
        return stub.ListSchedules(pb.ListSchedulesRequest(), metadata=(("x-api-key", MACHINE_KEY),))

    assert code_of(call) == grpc.StatusCode.PERMISSION_DENIED


def test_health_and_reflection_need_no_credentials(secured_channel):
    health = health_pb2_grpc.HealthStub(secured_channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="")).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_denials_are_logged_with_who_and_what_but_no_secret(secured_channel, issuer, caplog):
    caplog.set_level(logging.INFO)
    stub = scheduling_service_pb2_grpc.SchedulingServiceStub(secured_channel)
    token = issuer.token("viewer")
    code_of(lambda: stub.Solve(pb.SolveRequest(problem=one_job()), metadata=bearer(token)))
    code_of(
        lambda: stub.ListSchedules(
            pb.ListSchedulesRequest(), metadata=(("x-api-key", MACHINE_KEY),)
        )
    )
    denials = [r for r in caplog.records if r.name == "audit"]
    assert [(r.subject, r.grpc_method.rsplit("/", 1)[1]) for r in denials] == [
        ("alice", "Solve"),
        ("api-key:press-7", "ListSchedules"),
    ]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert token not in logged
    assert MACHINE_KEY not in logged


def test_rules_come_from_the_contract():
    scheduling = pb.DESCRIPTOR.services_by_name["SchedulingService"]
    assert rule_for(scheduling.methods_by_name["ListSchedules"]).required_role == Role.VIEWER
    assert rule_for(scheduling.methods_by_name["Solve"]).required_role == Role.OPERATOR
    maintenance = maintenance_service_pb2.DESCRIPTOR.services_by_name["MaintenanceService"]
    assert rule_for(maintenance.methods_by_name["GetServiceInfo"]).required_role == Role.VIEWER
