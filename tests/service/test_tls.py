"""TLS and mutual TLS on a real server; probes keep a plaintext health port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manufacturing.quality.v1 import quality_service_pb2 as pb
from manufacturing.quality.v1 import quality_service_pb2_grpc

from services.runtime import devcerts
from services.runtime.server import GrpcService
from tests.harness import mtls_environ, serve, settings_for, wait_for_status


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    devcerts.create(folder, hosts=("localhost", "127.0.0.1"))
    return folder


@pytest.fixture
def mtls_service(tmp_path, certs) -> Iterator[GrpcService]:
    settings = settings_for(
        "quality",
        tmp_path,
        **mtls_environ(certs),
    )
    with serve(settings) as service:
        yield service


def info_over(channel: grpc.Channel) -> str:
    stub = quality_service_pb2_grpc.QualityServiceStub(channel)
    return stub.GetServiceInfo(pb.GetServiceInfoRequest(), timeout=5).info.service_name


def test_client_with_certificate_is_served(mtls_service, certs):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / "client-key.pem").read_bytes(),
        certificate_chain=(certs / "client.pem").read_bytes(),
    )
    with grpc.secure_channel(f"localhost:{mtls_service.port}", credentials) as channel:
        assert info_over(channel) == "manufacturing.quality.v1.QualityService"


def test_client_without_certificate_is_refused(mtls_service, certs):
    credentials = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.pem").read_bytes())
    with (
        grpc.secure_channel(f"localhost:{mtls_service.port}", credentials) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        info_over(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(mtls_service):
    with (
        grpc.insecure_channel(f"127.0.0.1:{mtls_service.port}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        info_over(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_probes_use_the_plaintext_health_port(mtls_service):
    assert mtls_service.health_port not in (0, mtls_service.port)
    with grpc.insecure_channel(f"127.0.0.1:{mtls_service.health_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        alive = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert alive.status == health_pb2.HealthCheckResponse.SERVING
        # Ready once its inspection workers have started (seconds on a slow machine).
        wait_for_status(
            channel,
            "manufacturing.quality.v1.QualityService",
            health_pb2.HealthCheckResponse.SERVING,
            timeout_s=60,
        )
        with pytest.raises(grpc.RpcError) as caught:
            info_over(channel)  # nothing but health on this port
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
